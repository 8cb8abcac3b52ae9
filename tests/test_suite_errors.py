"""Bad input and a missing environment, run as users run the suite (pytest on perf_tests/ in a
subprocess): the documented exit status (4 usage, 6 environment), a message that names the option,
file or entry and the fix, and no work done before it."""

import json

import pytest
from suite_runs import run_suite


def test_unreachable_model_is_an_environment_error():
    result = run_suite("--model", "openai/whisper-large-v3-turbo-not-cached", "--variant", "eager",
                       env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 6, result.output[-4000:]
    assert "unreachable" in result.stdout and "--model tiny.en" in result.stdout


def test_gpu_asked_for_but_absent_is_an_environment_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_suite("--device", "cuda", "--variant", "eager")
    assert result.returncode == 6, result.output[-4000:]
    assert "--device cuda was asked for, but torch sees no CUDA device" in result.output


def test_bad_option_is_a_usage_error():
    result = run_suite("--rounds", "0")
    assert result.returncode == 4, result.output[-4000:]
    assert "--rounds must be at least 1, not 0" in result.output
    result = run_suite("--busy-threshold", "lots")
    assert result.returncode == 4, result.output[-4000:]
    assert "--busy-threshold is the cores other processes may use before a timed round counts as busy (a number " \
           "such as 0.25) or 'off', not 'lots'" in result.output
    result = run_suite("--busy-threshold", "off", "--strict-gate")  # a gate never judges a busy machine's timings
    assert result.returncode == 4 and "--strict-gate gates on the verdicts, and --busy-threshold off" in result.output
    result = run_suite("-n", "2")  # pytest-xdist, which the harness's own tests run under
    assert result.returncode == 4 and "-n (pytest-xdist) would time variants side by side" in result.output


def test_audio_folder_without_metadata_is_a_usage_error(tmp_path):
    result = run_suite("--variant", "eager", "--limit", "1", "--rounds", "1", "--dataset", str(tmp_path))
    assert result.returncode == 4, result.output[-4000:]
    assert f"{tmp_path}: no metadata.jsonl" in result.output
    assert "test_generate" not in result.stdout  # refused with the options, before any model was loaded
    result = run_suite("--variant", "eager", "--long-dataset", "no-such-folder")
    assert result.returncode == 4 and "--long-dataset no-such-folder: no such folder, and not a hub dataset id" \
        in result.output


def test_malformed_baseline_file_is_a_usage_error_naming_file_entry_and_field(tmp_path):
    from whisper_perf.inputs.hardware import detect_hardware

    key = detect_hardware("cpu").key
    bad = tmp_path / f"{key}.json"
    bad.write_text(json.dumps({"schema_version": 1, "hardware_key": key, "entries": [{"model": "tiny.en"}]}))
    result = run_suite("--variant", "eager", "--limit", "1", "--rounds", "1", "--baselines", str(tmp_path))
    assert result.returncode == 4, result.output[-4000:]
    assert f"{bad}, entry 0 (tiny.en/None): missing field 'variant'" in result.output
    assert "test_generate" not in result.stdout  # stopped before any model was loaded


def test_unwritable_results_folder_and_contradictory_options_stop_before_any_work(tmp_path):
    """Usage errors (exit 4) reported at start, before a model is loaded or anything is timed."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_suite("--results-dir", str(blocker / "runs"), "--variant", "eager", "--limit", "1")
    assert result.returncode == 4, result.output[-3000:]
    assert f"--results-dir {blocker / 'runs'}: cannot write there" in result.output
    assert "test_generate" not in result.stdout
    result = run_suite("--record", "--inject-slowdown", "0.1", "--variant", "compiled",
                       env={"WHISPER_PERF_SENSITIVITY_CHECK": "1"})
    assert result.returncode == 4 and "--record with --inject-slowdown" in result.output
    assert "test_generate" not in result.stdout
    result = run_suite("--device", "cpu", "--inject-slowdown", "0.1", "--inject-on", "device", "--variant", "compiled",
                       env={"WHISPER_PERF_SENSITIVITY_CHECK": "1"})
    assert result.returncode == 4, result.output[-3000:]
    assert "--inject-on device slows the GPU's own work and needs a CUDA device; this run is on cpu" in result.output
    assert "test_generate" not in result.stdout

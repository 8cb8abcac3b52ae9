"""The benchmark suite run as users run it (pytest on perf_tests/ in a subprocess), on the real
tiny.en with real torch.compile: record a baseline, then judge runs against it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--limit", "3", "--rounds", "3"]


def run_suite(*args, env=None):
    command = [sys.executable, "-m", "pytest", "perf_tests", "-p", "no:cacheprovider", "-v", "-rsxX", *args]
    # a wide "terminal", so that pytest does not shorten the reasons in its summary
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500,
                            env={**os.environ, "COLUMNS": "1000", **(env or {})})
    result.output = result.stdout + result.stderr
    return result


def outcomes(result) -> dict[str, str]:
    """test id -> PASSED/FAILED/SKIPPED/XFAIL/XPASS from pytest's -rsxX short summary and -v lines."""
    found = {}
    for line in result.stdout.splitlines():
        m = re.match(r"(PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR)\s+(?:\[\d+\]\s+)?perf_tests/\S+::(\S+)", line)
        if m:
            found[m.group(2)] = m.group(1)
        m = re.match(r"perf_tests/\S+::(\S+) (PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR)", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baselines")
    bench = folder.parent / "bench.json"
    result = run_suite(*SMALL, "--variant", "eager", "--variant", "compiled", "--variant", "compiled-static",
                       "--baselines", str(folder), "--record", f"--benchmark-json={bench}")
    assert result.returncode == 0, result.output[-4000:]
    (path,) = folder.glob("*.json")
    return result, path, json.loads(bench.read_text())


def test_record_run_prints_speedup_wer_and_writes_the_baseline(recorded):
    result, path, _ = recorded
    out = result.stdout
    assert re.search(r"whisper_perf: hardware cpu-\S+-t\d+", out)
    row = re.search(r"^tiny\.en\s+compiled-static\s+eager\+math\s+short\s+3\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+"
                    r"\[([\d.]+), ([\d.]+)\]\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)%", out, re.M)
    assert row, out[-4000:]
    eager_s, compiled_s, speedup, low, high, rtfx, wer_eager, wer, same = map(float, row.groups())
    assert abs(speedup - eager_s / compiled_s) < 0.01 and low <= speedup <= high
    assert wer == wer_eager and same == 100  # same greedy decoding, same tokens
    assert f"Recorded baseline {path}" in out and '+  "hardware_key"' in out
    data = json.loads(path.read_text())
    assert path.stem == data["hardware_key"]
    assert {(e["variant"], e["protocol"]["utterances"]) for e in data["entries"]} == {
        ("eager", 3), ("compiled", 3), ("compiled-static", 3)}
    static = next(e for e in data["entries"] if e["variant"] == "compiled-static")
    assert static["speedup"] == pytest.approx(static["reference_seconds"] / static["seconds"], rel=0.01)
    assert static["provenance"]["torch"] and static["provenance"]["rounds"] == 3


def test_benchmark_json_keeps_raw_samples_and_what_was_timed(recorded):
    _, _, bench = recorded
    by_name = {b["name"]: b for b in bench["benchmarks"]}
    compiled = by_name["test_generate[tiny.en-compiled-static]"]
    assert compiled["stats"]["rounds"] == 3 and len(compiled["stats"]["data"]) == 3
    extra = compiled["extra_info"]
    assert extra["setup"]["static_cache"] and extra["setup"]["attention"] == "sdpa-math"
    assert extra["reference"] == "eager+math" and len(extra["reference_samples"]) == 3
    assert extra["utterances"] == 3 and len(extra["samples"]) == 3 and len(extra["samples"][0]) == 3
    for pass_seconds, samples in zip(compiled["stats"]["data"], extra["samples"]):
        assert 0 <= pass_seconds - sum(s for _, s, _ in samples) < 0.2 * pass_seconds


def _edit(path: Path, tolerances=None, anomaly_on=None):
    data = json.loads(path.read_text())
    if tolerances:
        data["tolerances"].update(tolerances)
    for e in data["entries"]:
        if e["variant"] == anomaly_on:
            e["anomaly"] = {"reason": "compiled slower than eager (test)", "reference": "tests"}
    folder = path.parent.parent / f"edited-{anomaly_on}"
    folder.mkdir(exist_ok=True)
    (folder / path.name).write_text(json.dumps(data))
    return folder


WIDE = {"speedup": 0.5, "compiled_time": 0.9}


def test_injected_slowdown_fails_speedup_and_a_reproducing_anomaly_is_an_expected_failure(recorded):
    _, path, _ = recorded
    folder = _edit(path, WIDE, anomaly_on="compiled-static")
    result = run_suite(*SMALL, "--variant", "compiled", "--variant", "compiled-static", "--baselines", str(folder),
                       "--inject-slowdown", "4", env={"WHISPER_PERF_SENSITIVITY_CHECK": "1"})
    got = outcomes(result)
    assert result.returncode == 1, result.output[-4000:]
    assert got["test_speedup[tiny.en-compiled]"] == "FAILED", got
    assert got["test_speedup[tiny.en-compiled-static]"] == "XFAIL", got
    assert re.search(r"speedup [\d.]+x \[[\d.]+, [\d.]+\] \(95% CI\) is below", result.stdout)
    assert "known anomaly: compiled slower than eager (test)" in result.stdout
    assert got["test_wer_parity[tiny.en-compiled]"] == "PASSED"  # slower, but transcribes the same


def test_anomaly_that_no_longer_reproduces_turns_red(recorded):
    _, path, _ = recorded
    folder = _edit(path, WIDE, anomaly_on="compiled-static")
    result = run_suite(*SMALL, "--variant", "compiled-static", "--baselines", str(folder))
    got = outcomes(result)
    assert got["test_speedup[tiny.en-compiled-static]"] == "FAILED", result.output[-4000:]
    assert "[XPASS(strict)]" in result.stdout and "anomaly no longer reproduces" in result.stdout
    assert got["test_time[tiny.en-compiled-static]"] == "PASSED"


def test_changed_decoding_fails_wer_parity(recorded, tmp_path):
    from whisper_perf.models import resolve_model

    _, path, _ = recorded
    model = tmp_path / "tiny.en"  # same short name as the embedded model, so the baseline applies
    model.mkdir()
    source = Path(resolve_model("tiny.en").location)
    for f in source.iterdir():
        (model / f.name).symlink_to(f)
    (model / "generation_config.json").unlink()
    config = json.loads((source / "generation_config.json").read_text())
    config["suppress_tokens"] += [262, 290, 257]  # " the", " and", " a" can no longer be written
    (model / "generation_config.json").write_text(json.dumps(config))
    result = run_suite(*SMALL, "--variant", "eager", "--model", str(model), "--baselines", str(path.parent))
    got = outcomes(result)
    assert got["test_wer_parity[tiny.en-eager]"] == "FAILED", result.output[-4000:]
    assert re.search(r"differs from the baseline's [\d.]+% by more than 0.50 points", result.stdout)


def test_missing_baseline_is_a_clear_skip(tmp_path):
    result = run_suite("--limit", "1", "--rounds", "1", "--variant", "eager", "--baselines", str(tmp_path))
    assert result.returncode == 0, result.output[-4000:]
    got = outcomes(result)
    assert got["test_time[tiny.en-eager]"] == "SKIPPED"
    assert re.search(r"no baseline for tiny\.en/eager on hardware cpu-\S+ with protocol \(batch_size=1, dataset=short, "
                     r"dtype=float32, fixed_work=False, max_new_tokens=128, utterances=1\)", result.stdout)
    assert "Record it with: nox -s record -- --model tiny.en --limit 1" in result.stdout


def test_unreachable_model_fails_before_any_work():
    result = run_suite("--model", "openai/whisper-large-v3-turbo-not-cached", "--variant", "eager",
                       env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode != 0
    assert "unreachable" in result.stdout and "--model tiny.en" in result.stdout

"""The benchmark suite run as users run it: pytest on perf_tests/ in a subprocess."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_suite(*args, tmp_path):
    command = [sys.executable, "-m", "pytest", "perf_tests", "-p", "no:cacheprovider",
               f"--benchmark-json={tmp_path / 'bench.json'}", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500)


def test_suite_times_eager_and_compiled_and_prints_speedup_and_wer(tmp_path):
    result = run_suite("--limit", "3", "--rounds", "2", "--variant", "eager", "--variant", "compiled-static",
                       tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"whisper_perf: hardware cpu-\S+-t\d+", out)
    row = re.search(r"^tiny\.en\s+compiled-static\s+short\s+2\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)\s+"
                    r"([\d.]+)\s+([\d.]+)", out, re.M)
    assert row, out[-3000:]
    eager_s, compiled_s, speedup, rtfx, wer_eager, wer = map(float, row.groups())
    assert abs(speedup - eager_s / compiled_s) < 0.01
    assert wer == wer_eager  # same greedy decoding, same words

    bench = json.loads((tmp_path / "bench.json").read_text())
    by_name = {b["name"]: b for b in bench["benchmarks"]}
    assert set(by_name) == {"test_generate[tiny.en-eager]", "test_generate[tiny.en-compiled-static]"}
    compiled = by_name["test_generate[tiny.en-compiled-static]"]
    assert compiled["stats"]["rounds"] == 2 and len(compiled["stats"]["data"]) == 2
    extra = compiled["extra_info"]
    assert extra["setup"]["static_cache"] and extra["setup"]["attention"] == "sdpa-math"
    assert extra["utterances"] == 3 and len(extra["samples"]) == 2 and len(extra["samples"][0]) == 3
    # pytest-benchmark's time of a pass is the sum of our per-utterance times, plus loop overhead
    for pass_seconds, samples in zip(compiled["stats"]["data"], extra["samples"]):
        assert 0 <= pass_seconds - sum(s for _, s, _ in samples) < 0.2 * pass_seconds


def test_unreachable_model_fails_before_any_work(tmp_path):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pytest", "perf_tests", "-p", "no:cacheprovider",
               "--model", "openai/whisper-large-v3-turbo-not-cached", "--variant", "eager"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode != 0
    assert "unreachable" in result.stdout and "--model tiny.en" in result.stdout

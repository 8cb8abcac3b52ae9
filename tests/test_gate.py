"""A gate that cannot be green on nothing: a run that timed nothing, or judged no speed check,
says NOTHING MEASURED / NOTHING JUDGED, writes its results file naming what it did not time and
why, and fails --strict-gate with exit 7; ``judge`` keeps what the run could not see."""

import json
import re
from pathlib import Path

import pytest
from suite_runs import outcomes, run_suite

from whisper_perf.commands import judge, run_command
from whisper_perf.judge.verdicts import Outcome, Verdict
from whisper_perf.record.results import RunResult, Skip, VerdictRecord

ROOT = Path(__file__).resolve().parents[1]

# A platform on which torch.compile cannot run (Windows, an unsupported Python): torch itself says
# so through is_dynamo_supported, the one thing this machine cannot be.  Loaded at interpreter
# start, before the suite imports torch.
NO_DYNAMO = "import torch._dynamo\ntorch._dynamo.is_dynamo_supported = lambda: False\n"


def _headline(run_file) -> str:
    first = run_file.with_suffix(".md").read_text().splitlines()[0]
    return first.split(": ", 1)[1]


def test_every_variant_skipped_is_nothing_measured_and_fails_a_strict_gate(tmp_path, capsys):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_DYNAMO)
    results = tmp_path / "results"
    result = run_suite("--variant", "compiled", "--limit", "1", "--rounds", "1", "--results-dir", str(results),
                       "--strict-gate", env={"PYTHONPATH": str(site)})
    assert result.returncode == 7, result.output[-4000:]
    assert outcomes(result)["test_generate[tiny.en-compiled]"] == "SKIPPED"
    (run_file,) = results.glob("*/*.json")  # written although nothing was timed
    data = json.loads(run_file.read_text())
    assert data["measurements"] == [] and data["exit_status"] == 7
    (skip,) = data["skipped"]
    assert (skip["model"], skip["variant"]) == ("tiny.en", "compiled")
    assert "torch.compile is not supported on this platform" in skip["reason"]
    headline = _headline(run_file)
    assert headline.startswith("NOTHING MEASURED: 1 variant(s) skipped (torch.compile is not supported"), headline
    assert f"whisper_perf: {headline}" in result.stdout  # the run's last word says the same
    assert "whisper_perf: --strict-gate: no speed check was judged, exit 7" in result.stdout
    assert "## Variants not timed" in run_file.with_suffix(".md").read_text()
    # judged again: still nothing, and a gate still refuses it
    capsys.readouterr()
    assert run_command(judge.main, [str(run_file), "--strict-gate"]) == 7
    out = capsys.readouterr().out
    assert "skipped in the run: tiny.en/compiled: torch.compile is not supported" in out
    assert out.splitlines()[-1].startswith("NOTHING MEASURED"), out


def test_every_build_failed_is_nothing_measured_and_a_failure(tmp_path):
    """A C++ toolchain that does not work: the only variant asked for cannot be built."""
    results = tmp_path / "results"
    result = run_suite("--variant", "compiled", "--limit", "1", "--rounds", "1", "--results-dir", str(results),
                       "--strict-gate", env={"CXX": "/bin/false", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
    assert result.returncode == 1, result.output[-4000:]
    (run_file,) = results.glob("*/*.json")
    data = json.loads(run_file.read_text())
    assert data["measurements"] == [] and [f["variant"] for f in data["failures"]] == ["compiled"]
    assert _headline(run_file) == "NOTHING MEASURED: 1 failed to build or be timed"


def _run(**fields) -> RunResult:
    base = dict(hardware={"key": "cpu-k", "device": "cpu"}, software={}, finished="", exit_status=0,
                options={"record": False})
    return RunResult(**{**base, **fields})


def test_the_headline_never_reads_as_passed_when_no_speed_check_was_judged():
    time_open = VerdictRecord("tiny.en", "eager", Verdict("eager time", Outcome.NO_BASELINE, "no baseline", speed=True))
    wer = VerdictRecord("tiny.en", "eager", Verdict("wer", Outcome.PASS, "0.0% WER"))
    unreached = _run(verdicts=[time_open, wer], planned=[("tiny.en", "eager"), ("tiny.en", "compiled")])
    assert unreached.unreached() == [("tiny.en", "eager"), ("tiny.en", "compiled")]
    assert unreached.nothing_judged()
    assert unreached.headline() == ("NOTHING MEASURED: 2 never reached (the run was interrupted): tiny.en/eager, "
                                    "tiny.en/compiled")
    skipped = _run(skipped=[Skip("tiny.en", "compiled", "no dynamo")], planned=[("tiny.en", "compiled")])
    assert skipped.unreached() == [] and skipped.headline() == "NOTHING MEASURED: 1 variant(s) skipped (no dynamo)"
    judged = VerdictRecord("m", "v", Verdict("compiled vs eager", Outcome.PASS, "1.2x", speed=True))
    assert not _run(verdicts=[judged]).nothing_judged()
    assert _run(verdicts=[wer]).nothing_judged()  # WER is not a speed check: it alone judges no speed


@pytest.mark.quiet  # the gate keeps the busy rule: judged on a machine doing nothing else
def test_strict_gating_live_progress_and_what_was_changed_about_the_input(tmp_path):
    """--strict-gate (the release gate): nothing failed, but the time check had no baseline: exit 7,
    naming it (without --strict-gate the same run passes with a skip).  The run says each stage
    as it happens, in order, and that it resampled and downmixed the 8 kHz stereo input, live
    and in the report."""
    import numpy as np
    import soundfile

    audio, rate = soundfile.read(ROOT / "fixtures" / "audio" / "short" / "utt_000.flac")
    data = tmp_path / "data"
    data.mkdir()
    soundfile.write(data / "a.flac", np.stack([audio[::2], audio[::2]], axis=1), rate // 2)  # 8 kHz, stereo
    text = json.loads((ROOT / "fixtures" / "audio" / "short" / "metadata.jsonl").read_text().splitlines()[0])["text"]
    (data / "metadata.jsonl").write_text(json.dumps({"file_name": "a.flac", "text": text}) + "\n")
    results = tmp_path / "results"
    result = run_suite("--variant", "eager", "--limit", "1", "--rounds", "1", "--baselines", str(tmp_path / "none"),
                       "--dataset", str(data), "--results-dir", str(results), "--strict-gate")
    assert result.returncode == 7, result.output[-4000:]
    assert outcomes(result)["test_time[tiny.en-eager]"] == "SKIPPED"
    assert re.search(r"--strict-gate: speed checks not judged, exit 7: tiny\.en/eager: eager time", result.stdout)
    stages = ["model tiny.en: resolving", "model tiny.en: loaded on cpu in", "input: ", "building eager",
              "built eager in", "timing eager: round 1 of 1 done"]
    lines = [line for line in result.stdout.splitlines() if line.startswith("whisper_perf: ")]
    found = [next((i for i, line in enumerate(lines) if line.startswith(f"whisper_perf: {s}")), None) for s in stages]
    assert None not in found and found == sorted(found), lines
    changes = ["2 channels, averaged to mono: 1 file(s) (a.flac)", "8000 Hz, resampled to 16000 Hz: 1 file(s) (a.flac)"]
    assert all(f"whisper_perf: input: {data}: {c}" in result.stdout for c in changes), lines
    report = next(results.glob("*/*.md")).read_text()
    assert "## Input" in report and all(f"- {data}: {c}" in report for c in changes)

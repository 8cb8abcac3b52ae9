"""``nox -s judge``: a results file judged again against a baseline, on an H100's own files (its
baseline, a run it judged live, and an A/A run its time limit stopped before any speed verdict).
Reading only: nothing here times or compiles a model."""

import json
import re
from pathlib import Path

from whisper_perf.commands import judge, run_command
from whisper_perf.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from whisper_perf.record.results import load_run

ROOT = Path(__file__).resolve().parents[1]

H100 = ROOT / "tests" / "data" / "h100"  # the H100's baseline file as these runs were judged against it
RUNS = ROOT / "docs" / "measurements" / "cuda-sm_90-nvidia-h100-80gb-hbm3"  # that machine's committed runs
LIVE = RUNS / "20261127T075258.921098Z-669.json"  # judged live; its compiled-static crashed (SIGSEGV)
CUT = RUNS / "20261127T044757.932220Z-2662.json"  # an A/A stopped by its time limit before its speed verdicts
SPEED_AND_WER = ("compiled vs eager", "speedup", "compiled time", "eager time (reference)", "wer")


def _verdicts(found) -> list[tuple]:
    return [(variant, v.check, v.outcome.value, v.message) for _, variant, v in found]


def test_judge_gives_the_verdicts_the_live_run_gave():
    """A run judged live on the H100 against that baseline: judged again here, the same checks,
    outcomes and messages, word for word."""
    live = load_run(LIVE)
    expected = [(r.variant, r.verdict.check, r.verdict.outcome.value, r.verdict.message) for r in live.verdicts
                if r.verdict.check in SPEED_AND_WER]
    assert len(expected) == 5
    assert sorted(_verdicts(judge.rejudge(live, H100))) == sorted(expected)


def test_judge_still_fails_a_variant_that_failed_in_the_run(capsys):
    """In that run the published recipe's build crashed and a time limit stopped it later: judged
    again, it still fails and says why, though every check judged again passes, and it stays
    interrupted (exit 2): judging again cannot supply what the run never reached."""
    assert run_command(judge.main, [str(LIVE), "--baselines", str(H100)]) == EXIT_INTERRUPTED
    out = capsys.readouterr().out
    assert "failed in the run: build: tiny.en/compiled-static could not be built" in out and "SIGSEGV" in out
    assert "the run exited 2" in out  # it was stopped later, by a time limit
    assert "note: the run itself ended with exit 2 (interrupted): its verdicts cover only what it reached" in out
    assert out.splitlines()[-1] == "REGRESSION: 5 checks passed, 1 failed, 0 not judged", out


def _finished(tmp_path, planned_extra=()) -> str:
    """CUT as if its run had reached its end (exit 0), planning ``planned_extra`` besides what it measured."""
    data = json.loads(CUT.read_text())
    data["exit_status"] = 0
    data["planned"] = [[m["model"], m["variant"]] for m in data["measurements"]] + [list(k) for k in planned_extra]
    path = tmp_path / CUT.name
    path.write_text(json.dumps(data))
    return str(path)


def test_judge_judges_a_run_that_was_stopped_before_its_verdicts(capsys):
    """The A/A run on the H100 that its time limit stopped before any speed verdict: judged now,
    and still interrupted (exit 2)."""
    cut = CUT
    assert {r.verdict.check for r in load_run(cut).verdicts} == {"compile health"}
    assert run_command(judge.main, [str(cut), "--baselines", str(H100)]) == EXIT_INTERRUPTED
    out = capsys.readouterr().out
    assert re.search(r"compiled +speedup +PASS .* 1\.221x \[1\.189, 1\.255\] \(95% CI\) within baseline 1\.199x", out)
    assert re.search(r"compiled-static-prebuilt +speedup +PASS .* 2\.852x \[2\.747, 2\.984\] .* baseline 3\.121x", out)
    # 25% faster than at the recording (the host's speed): within the 30% this GPU's times are judged with
    assert re.search(r"eager +eager time +PASS .* 1\.925 s \[.*\] \(95% CI\) within baseline 2\.555 s, tolerance 30%", out)
    assert re.search(r"compiled +compile health +PASS", out)  # judged by the run, not again: kept
    assert out.splitlines()[-1] == "13 checks passed, 0 failed, 0 not judged", out


def test_judge_lists_what_the_run_never_reached(tmp_path, capsys):
    cut = _finished(tmp_path, planned_extra=[("tiny.en", "compiled-static")])
    assert run_command(judge.main, [cut, "--baselines", str(H100)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "never reached in the run: tiny.en/compiled-static" in out
    assert out.splitlines()[-1] == ("13 checks passed, 0 failed, 0 not judged; 1 never reached (the run was "
                                    "interrupted): tiny.en/compiled-static"), out


def test_judge_fails_a_regression_and_with_strict_gate_what_it_could_not_judge(tmp_path, capsys):
    cut = _finished(tmp_path)
    raised = tmp_path / "raised"
    raised.mkdir()
    data = json.loads((H100 / "cuda-sm_90-nvidia-h100-80gb-hbm3.json").read_text())
    for entry in data["entries"]:
        if entry["variant"] == "compiled":
            entry["speedup"] = 1.5  # the baseline says compiled ran 1.5x: 1.221x is a regression against it
    (raised / "cuda-sm_90-nvidia-h100-80gb-hbm3.json").write_text(json.dumps(data))
    assert run_command(judge.main, [cut, "--baselines", str(raised)]) == 1
    assert re.search(r"compiled +speedup +REGRESSION .* is below 1\.350x", capsys.readouterr().out)
    empty = tmp_path / "none"
    empty.mkdir()
    assert run_command(judge.main, [cut, "--baselines", str(empty)]) == EXIT_OK  # not judged is a skip...
    assert run_command(judge.main, [cut, "--baselines", str(empty), "--strict-gate"]) == 7  # ...but not at a gate
    out = capsys.readouterr().out
    assert "NO BASELINE" in out
    assert ("no baseline for tiny.en/compiled on hardware cuda-sm_90-nvidia-h100-80gb-hbm3 with protocol (batch_size=1, "
            "dataset=short, dtype=float16") in out


def test_judge_refuses_what_it_cannot_read(tmp_path, capsys):
    cut = json.loads((CUT).read_text())
    cut["measurements"][0]["variant"] = "compiled-v2"  # written by another version of the suite
    (tmp_path / "other.json").write_text(json.dumps(cut))
    cases = {str(tmp_path / "missing.json"): "missing.json: not a readable results file",
             str(H100 / "cuda-sm_90-nvidia-h100-80gb-hbm3.json"): "not a results file of this suite",  # a baseline
             str(tmp_path / "other.json"): "variant 'compiled-v2' is not one this suite knows"}
    for path, message in cases.items():
        assert run_command(judge.main, [path, "--baselines", str(H100)]) == EXIT_USAGE
        assert message in capsys.readouterr().err
    assert run_command(judge.main, [str(tmp_path / "other.json"), "--baselines", str(tmp_path / "nope")]) == EXIT_USAGE
    assert f"--baselines {tmp_path / 'nope'}: no such folder" in capsys.readouterr().err

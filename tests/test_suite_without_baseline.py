"""A run on hardware with no baseline (an empty --baselines folder), as a new machine's first run
is: what it still judges, what it says it could not, and the bug report its slowed twin gives.
The suite runs as users run it, in a subprocess, on the real tiny.en with real torch.compile."""

import json
import re
from pathlib import Path

import pytest
from suite_runs import SPEED_JUDGED, outcomes, run_suite


@pytest.fixture(scope="module")
def slowed_without_baseline(tmp_path_factory):
    """compiled and a twin made twice as slow, against an empty baselines folder: one run, which
    one test reads for what it judged and another for the bug report it wrote."""
    folder = tmp_path_factory.mktemp("slowed")
    result = run_suite("--limit", "1", "--rounds", "2", "--variant", "compiled", "--baselines", str(folder / "none"),
                       "--inject-slowdown", "1", "--results-dir", str(folder / "results"),
                       f"--junitxml={folder / 'junit.xml'}", env={"WHISPER_PERF_SENSITIVITY_CHECK": "1"})
    return result, folder


def test_without_a_baseline_compiled_is_judged_against_eager_and_the_headline_says_what_was_not(slowed_without_baseline):
    """A hardware key with no baseline (an empty --baselines folder): the compiled variant is still
    judged against its own eager build (how, on this loaded machine: SPEED_JUDGED) and for WER
    parity; a twin made twice as slow fails as
    "compiled slower than eager"; the checks that need a baseline skip saying how to record one,
    and the report's title and the run's last line count what was judged and what was not."""
    result, folder = slowed_without_baseline
    assert result.returncode == 1, result.output[-4000:]
    got = outcomes(result)
    assert got["test_speedup[tiny.en-compiled]"] in ("PASSED", "FAILED"), got
    assert got["test_speedup[tiny.en-compiled+slowed]"] == "FAILED", got
    assert re.search(r"compiled slower than eager: speedup [\d.]+x \[[\d.]+, [\d.]+\] \(95% CI\) lies wholly below 1x",
                     result.stdout), result.stdout[-4000:]
    assert got["test_wer_parity[tiny.en-compiled]"] == "PASSED" and got["test_time[tiny.en-compiled]"] == "SKIPPED"
    assert re.search(r"no baseline for tiny\.en/compiled on hardware cpu-\S+ with protocol \(batch_size=1, dataset=short, "
                     r"dtype=float32, fixed_work=False, max_new_tokens=128, utterances=1\)", result.stdout)
    assert "Record it with: nox -s record -- --variant compiled --limit 1" in result.stdout
    (run_file,) = (folder / "results").glob("*/*.json")
    data = json.loads(run_file.read_text())
    judged = {(v["variant"], v["check"]): v["outcome"] for v in data["verdicts"]}
    assert judged[("compiled", "compiled vs eager")] in SPEED_JUDGED and judged[("compiled", "wer")] == "pass"
    assert judged[("compiled", "speedup")] == "no baseline" and judged[("compiled+slowed", "compiled vs eager")] == "regression"
    not_judged = sum(outcome == "no baseline" for outcome in judged.values())
    headline = re.search(r"^# Whisper torch\.compile on (\S+): (.*)$", run_file.with_suffix(".md").read_text(), re.M)
    assert headline and f"not judged ({not_judged} without a baseline for {headline.group(1)}: record one with nox -s " \
                        "record)" in headline.group(2) and headline.group(2).startswith("REGRESSION: ")
    assert f"whisper_perf: {headline.group(2)}" in result.stdout  # the run's last word says the same
    import xml.etree.ElementTree as ET  # --junitxml works as in any pytest run

    cases = {c.get("name"): c for c in ET.parse(folder / "junit.xml").iter("testcase")}
    assert "test_generate[tiny.en-compiled]" in cases and cases["test_time[tiny.en-compiled]"].find("skipped") is not None


def test_the_slowed_twin_gives_a_repro_whose_plain_loop_shows_it(slowed_without_baseline, tmp_path):
    """The twin twice as slow is slower than eager (compiled vs eager: REGRESSION, no baseline
    needed): the run writes a folder to file upstream, and its repro.py, run alone, times eager and
    the slowed build side by side and shows the speedup lost."""
    from test_bug_report import run_repro

    result, folder = slowed_without_baseline
    (run_file,) = (folder / "results").glob("*/*.json")
    data = json.loads(run_file.read_text())
    reports = data["bug_reports"]
    regressed = {f"{v['model']}/{v['variant']}" for v in data["verdicts"] if v["outcome"] == "regression"}
    assert sorted(reports) == sorted(regressed) and "tiny.en/compiled+slowed" in reports, reports  # SPEED_JUDGED
    repro = Path(reports["tiny.en/compiled+slowed"])
    assert repro.parent.name == f"{run_file.stem}-repro"
    assert sorted(p.name for p in repro.iterdir()) == ["env.txt", "inputs.npz", "report.md", "repro.py"]
    assert "PyTorch version" in (repro / "env.txt").read_text()  # collect_env's own output
    assert "transformers version" in (repro / "env.txt").read_text()
    assert not re.search(r"^\s*(import|from)\s+(whisper_perf|\.)", (repro / "repro.py").read_text(), re.M)
    assert f"`{repro}`" in run_file.with_suffix(".md").read_text()  # the run's report points at it
    done = run_repro(repro, tmp_path, "--rounds", "1")  # twice as slow: one round shows it
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    speedup = re.search(r"eager [\d.]+ s, compiled\+slowed [\d.]+ s, speedup ([\d.]+)x", done.stdout)
    assert speedup, done.stdout
    assert float(speedup.group(1)) < 0.9, done.stdout  # twice as slow, beside a compiled speedup of about 1.1x

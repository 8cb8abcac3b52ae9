"""The commands (whisper_perf.commands) on a real results file, the committed sample run
(results_sample.py): run_command's exit statuses, merge, history and upgrade.  Analysis and
rendering only: nothing here times or compiles a model."""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from results_sample import KEY, ROOT, SAMPLE, as_default_run, copy_sample

from whisper_perf.commands import Parser, comparison, history, merge, run_command, upgrade
from whisper_perf.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_USAGE, EnvironmentUnavailable, UsageError
from whisper_perf.judge import baselines
from whisper_perf.judge.baselines import BaselineFile, Tolerances
from whisper_perf.record.results import load_run


@pytest.fixture
def run():
    return load_run(SAMPLE)


# ---- run_command: one path from errors to exit statuses ----

def test_run_command_maps_errors_to_exit_statuses(capsys):
    def failing(error):
        def main(argv):
            raise error
        return main

    assert run_command(lambda argv: EXIT_OK) == EXIT_OK
    assert run_command(failing(UsageError("--out x: exists"))) == EXIT_USAGE == 4
    assert capsys.readouterr().err == "UsageError: --out x: exists\n"
    assert run_command(failing(EnvironmentUnavailable("no GPU"))) == EXIT_ENVIRONMENT == 6
    assert capsys.readouterr().err == "EnvironmentUnavailable: no GPU\n"


def test_bad_command_line_is_a_usage_error():
    parser = Parser(prog="x")
    parser.add_argument("--runs", type=int)
    with pytest.raises(UsageError, match="argument --runs: invalid int value"):
        parser.parse_args(["--runs", "many"])
    assert run_command(upgrade.main, ["--repeats", "1"]) == EXIT_USAGE  # --to missing


def test_module_entry_point_exits_with_the_usage_status(tmp_path):
    done = subprocess.run([sys.executable, "-m", "whisper_perf.commands.merge", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert done.returncode == 4 and f"UsageError: {tmp_path / 'none'}: no such results file or folder" in done.stderr


# ---- merge ----

def test_merge_refuses_other_protocols_naming_files_and_fields(tmp_path):
    ours = copy_sample(tmp_path, "ours")
    theirs = copy_sample(tmp_path, "theirs", lambda d: d["measurements"][0].update(utterances=7))
    with pytest.raises(UsageError) as refused:
        merge.load_all([ours, theirs])
    assert f"{ours} and {theirs} measured tiny.en/compiled on {KEY}" in str(refused.value)
    assert "(utterances 3 vs 7)" in str(refused.value)
    assert len(merge.load_all([ours, theirs], check_protocols=False)) == 2
    # a batched measurement is another series, not another protocol of the same one: merged, named apart
    batched = copy_sample(tmp_path, "batched", lambda d: d["measurements"][0]["setup"].update(batch_size=4))
    text = merge.render(merge.load_all([ours, batched]))
    assert "| tiny.en | compiled (batch 4) |" in text and "| tiny.en | compiled |" in text
    other = copy_sample(tmp_path, "other", lambda d: (d["measurements"][0]["setup"].update(batch_size=4),
                                                      d["measurements"][0].update(utterances=7)))
    with pytest.raises(UsageError, match=r"measured tiny.en/compiled \(batch 4\) on .*\(utterances 3 vs 7\)"):
        merge.load_all([batched, other])


def test_merge_refuses_another_schema_version(tmp_path):
    other = copy_sample(tmp_path, "other", lambda d: d.update(schema_version=99))
    with pytest.raises(UsageError, match="schema_version 99"):
        merge.load_all([SAMPLE, other])


def test_merge_renders_every_measurement_with_its_failing_checks(run):
    text = merge.render([run])
    assert f"## {KEY} (AMD EPYC)" in text
    assert "| speedup [95% CI] | variant s | eager s | WER | verdicts |" in text
    rows = {line.split(" | ")[4]: line for line in text.splitlines() if line.startswith(f"| {SAMPLE.stem} |")}
    assert set(rows) == {"compiled", "compiled-static", "compiled+slowed", "compiled-static+slowed"}
    assert "| 1.091x [1.065, 1.113] |" in rows["compiled"] and "| 4 checks passed, 0 failed, 0 not judged |" in rows["compiled"]
    assert "**REGRESSION: speedup, compiled time**" in rows["compiled+slowed"]
    # "anomaly gone" fails a run as a regression does (Outcome.fails); "known anomaly" does not
    assert "**REGRESSION: speedup**" in rows["compiled-static"]
    assert "**REGRESSION: compiled time**" in rows["compiled-static+slowed"]


def test_merge_writes_its_report_once(tmp_path):
    out = tmp_path / "merged"
    assert run_command(merge.main, [str(SAMPLE), "--out", str(out)]) == EXIT_OK
    assert (out / "merged-speedup.png").read_bytes()[:4] == b"\x89PNG"
    assert "![speedups](merged-speedup.png)" in (out / "merged.md").read_text()
    (written,) = json.loads((out / "merged.json").read_text())["runs"]
    assert written["file"] == str(SAMPLE) and len(written["measurements"]) == 4
    with pytest.raises(UsageError, match="exists and is not an empty folder"):
        merge.main([str(SAMPLE), "--out", str(out)])


# ---- history ----

def test_history_leaves_out_sensitivity_runs(tmp_path, run):
    assert history.series([run]) == {}
    copy_sample(tmp_path, "sensitivity")
    with pytest.raises(UsageError, match=re.escape(f"no runs in {tmp_path}")):
        history.main(["--results-dir", str(tmp_path), "--out", str(tmp_path / "h")])


def test_history_renders_a_line_per_variant_and_marks_version_changes(tmp_path):
    def upgraded(data):
        as_default_run(data)
        data["finished"] = "2026-11-27T10:00:00+00:00"
        data["software"]["torch"] = "2.14.0+cpu"

    runs = merge.load_all([copy_sample(tmp_path, "a-before", as_default_run), copy_sample(tmp_path, "b-after", upgraded)])
    trends = history.series(runs)
    (trend,) = trends.values()
    assert [r.path.stem for r in trend.runs] == ["a-before", "b-after"]
    assert list(trend.lines)[:2] == [("tiny.en", "compiled", "x3"), ("tiny.en", "compiled-static", "x3")]
    text = history.render(trends)
    assert "| run | torch | transformers | tiny.en compiled x3 |" in text
    assert "| a-before | 2.13.0+cpu | 5.24.0 | 1.091x [1.065, 1.113], 1.90 s |" in text
    assert "| b-after **(torch 2.13.0+cpu -> 2.14.0+cpu)** | 2.14.0+cpu |" in text
    assert f"![history {KEY}](history-{KEY}.png)" in text


def test_history_keeps_a_batched_measurement_apart_from_batch_1(tmp_path):
    def batched(data):
        as_default_run(data)
        data["finished"] = "2026-11-27T10:00:00+00:00"
        for m in data["measurements"]:
            m["setup"]["batch_size"] = 4

    runs = merge.load_all([copy_sample(tmp_path, "a", as_default_run), copy_sample(tmp_path, "b", batched)])
    (trend,) = history.series(runs).values()
    assert ("tiny.en", "compiled", "x3") in trend.lines and ("tiny.en", "compiled", "x3, batch 4") in trend.lines
    assert trend.lines[("tiny.en", "compiled", "x3")][1] is None  # the batched run is no point of the batch-1 line


def _nights(tmp_path: Path, upgrade_from: int | None = None) -> Path:
    """14 default runs, a night apart, within 1% of each other; from night ``upgrade_from`` on,
    transformers 5.25.0, under which tiny.en compiled's speedup is 20% lower and its time 25%
    higher (the other lines unchanged)."""
    wobble = [0.0, 0.01, -0.01, 0.005, -0.005, 0.008, -0.008]

    def night(n: int):
        def change(data):
            as_default_run(data)
            data["finished"] = f"2026-12-{n + 1:02d}T02:00:00+00:00"
            upgraded = upgrade_from is not None and n >= upgrade_from
            if upgraded:
                data["software"]["transformers"] = "5.25.0"
            for m in data["measurements"]:
                slower = upgraded and m["variant"] == "compiled"
                for name, scale in (("speedup", 0.8 if slower else 1.0), ("seconds", 1.25 if slower else 1.0)):
                    interval = m["summary"][name]
                    for bound in ("estimate", "low", "high"):
                        interval[bound] *= scale * (1 + wobble[n % 7])
        return change

    for n in range(14):
        copy_sample(tmp_path, f"night{n:02d}", night(n))
    return tmp_path


def test_history_names_a_step_and_the_version_change_it_began_with(tmp_path):
    runs = _nights(tmp_path / "runs", upgrade_from=7)
    loose = tmp_path / "loose"
    loose.mkdir()
    baselines.path_for(loose, KEY).write_text(BaselineFile(KEY, tolerances=Tolerances(compiled_time=0.38)).to_json())
    history.main(["--results-dir", str(runs), "--out", str(tmp_path / "h"), "--baselines", str(loose)])
    text = (tmp_path / "h" / "history.md").read_text()
    steps = text.split("### Steps\n\n")[1].split("\n\n")[0].splitlines()
    before = "torch 2.13.0+cpu, transformers 5.24.0, commit ba51bb5"
    after = "torch 2.13.0+cpu, transformers 5.25.0, commit ba51bb5"
    # the time step (+25%) is within the key's compiled_time tolerance there (38%): only the speedup's
    assert steps == [f"- tiny.en compiled x3, speedup -20.0% (slower), 1.09x -> 0.87x: last run before night06 "
                     f"({before}), first run after night07 ({after}); suspect: transformers 5.24.0 -> 5.25.0 "
                     f"(p = 0.001)"]
    assert (tmp_path / "h" / f"history-{KEY}.png").stat().st_size > 0
    history.main(["--results-dir", str(runs), "--out", str(tmp_path / "h2"), "--baselines", str(tmp_path / "none")])
    steps = (tmp_path / "h2" / "history.md").read_text().split("### Steps\n\n")[1].split("\n\n")[0].splitlines()
    assert [s.split(": last run")[0] for s in steps] == [  # the default tolerances: time 15%
        "- tiny.en compiled x3, speedup -20.0% (slower), 1.09x -> 0.87x",
        "- tiny.en compiled x3, time +25.0% (slower), 1.90 s -> 2.38 s"]


def test_history_of_flat_runs_says_there_is_no_step_beyond_the_tolerance(tmp_path):
    runs = _nights(tmp_path / "runs")
    history.main(["--results-dir", str(runs), "--out", str(tmp_path / "h"), "--baselines", str(ROOT / "baselines")])
    text = (tmp_path / "h" / "history.md").read_text()
    tolerances = baselines.tolerances_for(ROOT / "baselines", KEY)  # the project's for this key, or the defaults
    assert (f"### Steps\n\n- no step beyond the tolerance (speedup {tolerances.speedup:.0%}, time "
            f"{tolerances.compiled_time:.0%})\n\n![history") in text


def test_history_says_when_runs_are_too_few_for_a_step(tmp_path, run):
    trends = history.series([dataclasses.replace(run, options={**run.options, "inject_slowdown": 0.0})])
    assert ("- no step beyond the tolerance (speedup 10%, time 15%); too few runs (1) to tell a step from "
            "chance: about 12 are needed") in history.render(trends)


# ---- upgrade ----

def _environments(before, after):
    envs = upgrade.Environment("current"), upgrade.Environment("next")
    envs[0].runs, envs[1].runs = [before], [after]
    return list(envs)


def test_upgrade_of_a_run_against_itself_finds_no_credible_change(run):
    report = comparison.compare(_environments(run, run), Tolerances())
    assert [(row["variant"], row["changes"]["next"]["verdict"]) for row in report["rows"]] == [
        (v, "no credible change") for v in ("compiled", "compiled-static", "compiled+slowed", "compiled-static+slowed")]
    change = report["rows"][0]["changes"]["next"]
    assert change["speedup"]["low"] < 1 < change["speedup"]["high"]
    assert not comparison.failed(report)
    text = upgrade.render(report, KEY)
    assert "| model | variant | speedup current | time s current | WER current | speedup next |" in text
    assert "| tiny.en | compiled | 1.091x [1.065, 1.113] |" in text
    assert "| tiny.en | compiled | 3 / 0 / 0; 9.3 s | 3 / 0 / 0; 9.3 s |" in text  # graphs / breaks / recompiles; 1st call


def test_upgrade_flags_a_slower_side_and_a_side_that_failed(run):
    slowed = run.measurement("tiny.en", "compiled+slowed")
    after = dataclasses.replace(run, measurements=[dataclasses.replace(
        run.measurement("tiny.en", "compiled"), samples=slowed.samples, reference_samples=slowed.reference_samples)])
    report = comparison.compare(_environments(run, after), Tolerances())
    change = report["rows"][0]["changes"]["next"]
    assert change["verdict"] == "regression" and change["detail"].startswith("speedup -49.")
    assert "time +" in change["detail"]
    assert report["rows"][1]["changes"]["next"]["verdict"] == "failed"  # not measured in "next"
    assert comparison.failed(report)
    assert "**REGRESSION**" in upgrade.render(report, KEY)


def _slower(m, eager: float = 1.0, compiled: float = 1.0, probe: float = 1.0):
    """``m`` measured on a side whose eager / compiled calls took that much longer, on a machine
    whose torch-free probe ran ``probe`` times slower."""
    scale = lambda passes, f: [[[u, seconds * f, tokens] for u, seconds, tokens in p] for p in passes]  # noqa: E731
    return dataclasses.replace(m, samples=scale(m.samples, compiled), reference_samples=scale(m.reference_samples, eager),
                               summary=dataclasses.replace(m.summary, machine_probe_ms=m.summary.machine_probe_ms * probe))


def test_upgrade_compares_like_with_like_eager_too_at_equal_machine_speed(run):
    m = run.measurement("tiny.en", "compiled")
    compare = lambda after: comparison.compare(  # noqa: E731
        _environments(run, dataclasses.replace(run, measurements=[after])), Tolerances())["rows"][0]["changes"]["next"]
    # eager 30% slower, compiled unchanged: the speedup "improves", and it is a regression
    eager_slower = compare(_slower(m, eager=1.3))
    assert eager_slower["verdict"] == "regression" and "eager time +30.0%" in eager_slower["detail"]
    assert eager_slower["reference_seconds"]["low"] > 1.25
    # everything 10% slower on a machine whose probe says it ran 10% slower: no change of the code
    drift = compare(_slower(m, eager=1.1, compiled=1.1, probe=1.1))
    assert drift["verdict"] == "no credible change"
    assert "times at one machine speed (each run scaled to the median torch-free probe" in drift["detail"]
    assert "x0.955 to x1.050" in drift["detail"]  # both runs halfway to the median of their probes
    assert abs(drift["seconds"]["estimate"] - 1) < 0.001
    # the probe moved beyond what can be adjusted for: the times are not compared, the speedup still is
    moved = compare(_slower(m, eager=2.0, compiled=2.0, probe=2.0))
    assert "seconds" not in moved and "speedup" in moved and "machine speed changed" in moved["detail"]


def test_side_by_side_runs_are_each_brought_to_one_machine_speed(run):
    """Alternating runs where one run of each side hit a slow spell (its probe and its times 1.25x):
    each run is scaled by its own probe, so the spells cancel instead of the latest run's probe
    scaling every run's rounds; a run whose probe is beyond what is adjusted for is left out, named."""
    m = run.measurement("tiny.en", "compiled")
    slow_spell = _slower(m, eager=1.25, compiled=1.25, probe=1.25)
    envs = _environments(run, run)
    envs[0].runs = [dataclasses.replace(run, measurements=[x]) for x in (m, m, slow_spell)]  # its latest run slow
    envs[1].runs = [dataclasses.replace(run, measurements=[x]) for x in (slow_spell, m, m)]
    change = comparison.compare(envs, Tolerances())["rows"][0]["changes"]["next"]
    assert change["verdict"] == "no credible change" and abs(change["seconds"]["estimate"] - 1) < 0.001
    assert "x0.800 to x1.000" in change["detail"] and "left out" not in change["detail"]
    # one run far slower still (probe 2x): left out of the times, the others judged
    envs[1].runs.append(dataclasses.replace(run, measurements=[_slower(m, eager=2.0, compiled=2.0, probe=2.0)]))
    change = comparison.compare(envs, Tolerances())["rows"][0]["changes"]["next"]
    assert "1 of 7 run(s) left out" in change["detail"] and abs(change["seconds"]["estimate"] - 1) < 0.001


def test_memory_added_by_the_calls_is_told_apart_from_what_the_process_holds(run):
    d = run.measurement("tiny.en", "compiled").diagnostics
    cpu = dataclasses.replace(d, variant={"peak_memory": {
        "bytes": 1400 * 2**20, "start_bytes": 1300 * 2**20, "kind": "process peak RSS, VmHWM reset before"}})
    assert cpu.peak_memory_bytes() == 1400 * 2**20 and cpu.memory_rise_bytes() == 100 * 2**20
    cuda = dataclasses.replace(d, variant={"peak_memory": {
        "bytes": 300 * 2**20, "start_bytes": 900 * 2**20, "kind": "cuda max allocated above start"}})
    assert cuda.memory_rise_bytes() == 300 * 2**20  # on CUDA the judged figure is the rise already


def test_upgrade_requirements_put_torch_first():
    assert upgrade.requirement_groups("torch==2.6.0 transformers==4.52.4") == ["torch==2.6.0", "transformers==4.52.4"]
    pinned, rest = upgrade.requirement_groups("transformers==4.46.2")
    assert pinned.startswith("torch==") and "+" not in pinned and rest == "transformers==4.46.2"
    # the nightly look-ahead's newest releases: torch's index and --pre stay with torch
    assert upgrade.requirement_groups("torch --pre --index-url https://download.pytorch.org/whl/nightly/cpu "
                                      "transformers") == [
        "torch --pre --index-url https://download.pytorch.org/whl/nightly/cpu", "transformers"]
    assert upgrade.requirement_groups("transformers==5.24.0 --no-deps torch==2.14.1 --index-url=https://x") == [
        "torch==2.14.1 --index-url=https://x", "transformers==5.24.0 --no-deps"]

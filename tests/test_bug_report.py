"""The folder to file upstream: repro.py, standalone, shows what the run saw.  Real runs of the
suite, then repro.py alone in a fresh process that cannot import whisper_perf."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from test_suite_e2e import run_suite

from whisper_perf.bug_report import Finding, findings
from whisper_perf.results import Failure, RunResult, VerdictRecord
from whisper_perf.verdicts import Outcome, Verdict

# Any import of whisper_perf fails in the process that runs repro.py: it must need torch and
# transformers only.
NO_WHISPER_PERF = "import sys\nsys.modules['whisper_perf'] = None\n"


def run_repro(folder: Path, tmp_path: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    """``python repro.py`` from its own folder, in a process where whisper_perf cannot be imported."""
    site = tmp_path / "no-whisper-perf"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_WHISPER_PERF)
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "repro.py", *args], cwd=folder, capture_output=True, text=True,
                          timeout=900, env={**base, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", **(env or {})})


def test_the_injected_slowdown_twin_gives_a_repro_whose_plain_loop_shows_it(tmp_path):
    """A twin slowed by 50% is slower than eager (compiled vs eager: REGRESSION, no baseline
    needed): its repro.py times eager and the slowed build side by side and shows the speedup lost."""
    results = tmp_path / "results"
    result = run_suite("--variant", "compiled", "--inject-slowdown", "0.5", "--limit", "1", "--rounds", "2",
                       "--results-dir", str(results), "--baselines", str(tmp_path / "none"),
                       env={"WHISPER_PERF_SENSITIVITY_CHECK": "1"})
    assert result.returncode == 1, result.output[-4000:]
    (run_file,) = results.glob("*/*.json")
    reports = json.loads(run_file.read_text())["bug_reports"]
    assert list(reports) == ["tiny.en/compiled+slowed"], reports
    folder = Path(reports["tiny.en/compiled+slowed"])
    assert folder.parent.name == f"{run_file.stem}-repro"
    assert sorted(p.name for p in folder.iterdir()) == ["env.txt", "inputs.npz", "report.md", "repro.py"]
    assert "PyTorch version" in (folder / "env.txt").read_text()  # collect_env's own output
    assert "transformers version" in (folder / "env.txt").read_text()
    assert not re.search(r"^\s*(import|from)\s+(whisper_perf|\.)", (folder / "repro.py").read_text(), re.M)
    assert f"`{folder}`" in run_file.with_suffix(".md").read_text()  # the run's report points at it
    done = run_repro(folder, tmp_path, "--rounds", "2")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    speedup = re.search(r"eager [\d.]+ s, compiled\+slowed [\d.]+ s, speedup ([\d.]+)x", done.stdout)
    assert speedup, done.stdout
    assert float(speedup.group(1)) < 0.95, done.stdout  # 50% slower, beside a compiled speedup of about 1.1x


def _run(**fields) -> RunResult:
    return RunResult(hardware={"key": "k"}, software={}, finished="", exit_status=1, options={}, **fields)


def test_one_finding_per_variant_a_failure_first_then_a_recompile_then_a_regression():
    regression = Verdict("speedup", Outcome.REGRESSION, "speedup 0.9x below 1.0x", speed=True)
    recompile = Verdict("compile health", Outcome.REGRESSION, "2 recompile(s) during the timed rounds")
    run = _run(failures=[Failure("m", "a", "build", "a could not be built: killed by SIGSEGV in x")],
               verdicts=[VerdictRecord("m", "a", regression), VerdictRecord("m", "b", recompile),
                         VerdictRecord("m", "b", regression), VerdictRecord("m", "c", regression),
                         VerdictRecord("m", "d", Verdict("speedup", Outcome.PASS, "fine", speed=True))])
    found = {f.variant: f for f in findings(run)}
    assert sorted(found) == ["a", "b", "c"]
    assert found["a"].kind == "crash" and found["a"].title == "m a crashes (build)"
    assert found["b"].kind == "recompile" and found["c"] == Finding(
        "m", "c", "regression", "m c: speedup regressed", "speedup 0.9x below 1.0x", "speedup within the baseline's tolerance")


def test_bisect_names_the_bug_report_folders_of_the_first_bad_version(tmp_path):
    """The results files of a probe's runs name their folders; bisect's report lists the first bad one's."""
    from whisper_perf.commands.bisect import bug_reports_of, render
    from whisper_perf.results import write_run

    run = _run(bug_reports={"tiny.en/compiled": str(tmp_path / "x-repro" / "tiny.en-compiled")})
    write_run(tmp_path / "probes" / "1.5" / "slowprobe-1.5", "cpu-k", run)
    write_run(tmp_path / "probes" / "1.4" / "slowprobe-1.4", "cpu-k", _run())
    (tmp_path / "probes" / "1.5" / "other.json").write_text("{}")  # not a results file: passed over
    assert bug_reports_of(tmp_path, "1.5") == [str(tmp_path / "x-repro" / "tiny.en-compiled")]
    assert bug_reports_of(tmp_path, "1.4") == []
    report = {"outcome": {"probes": [], "verdict": "found"}, "order": ["1.4", "1.5"], "package": "p",
              "hardware_key": "k", "conclusion": "first bad", "good": "1.4", "bad": "1.5", "criterion": "failure",
              "tolerance": 0.05, "variant": "compiled", "base": "", "minutes": 1.0, "pytest_args": [],
              "listed_from": "index", "confidence": 0.95, "bug_reports": bug_reports_of(tmp_path, "1.5")}
    assert f"- `{tmp_path / 'x-repro' / 'tiny.en-compiled'}`" in render(report)

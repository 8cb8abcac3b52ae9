"""The folder to file upstream: repro.py, standalone, shows what the run saw.  Real runs of the
suite, then repro.py alone in a fresh process that cannot import whisper_perf."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from suite_runs import run_suite

from whisper_perf.judge.verdicts import Outcome, Verdict
from whisper_perf.record.bug_report import Finding, findings
from whisper_perf.record.results import Failure, RunResult, VerdictRecord

# Any import of whisper_perf fails in the process that runs repro.py: it must need torch and
# transformers only.
NO_WHISPER_PERF = "import sys\nsys.modules['whisper_perf'] = None\n"


def run_repro(folder: Path, tmp_path: Path, *args: str, env=None, stack: Path | None = None) -> subprocess.CompletedProcess:
    """``python repro.py`` from its own folder, in a process where whisper_perf cannot be imported
    (and, with ``stack``, a folder of installed "releases" that is imported first)."""
    site = tmp_path / "no-whisper-perf"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_WHISPER_PERF + (LOAD_RELEASE if stack else ""))
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    path = os.pathsep.join([str(site), *([str(stack)] if stack else [])])
    return subprocess.run([sys.executable, "repro.py", *args], cwd=folder, capture_output=True, text=True,
                          timeout=900, env={**base, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", **(env or {})})


# A transformers "release" that recompiles mid-run: its generate() sets a flag from a model's third
# call on, which its forward reads (one more operator, same values).  Dynamo guards on the flag, so
# the first call after the suite's warm-up (one full-budget call, one with the timed settings)
# fails the guard and recompiles while timed.
RELEASE = "recompile_release"
RECOMPILING_RELEASE = """import functools

import torch
import transformers

_generate = transformers.WhisperForConditionalGeneration.generate
_forward = transformers.WhisperForConditionalGeneration.forward


@functools.wraps(_generate)
def generate(self, *args, **kwargs):
    served = self.__dict__.get("_served", 0) + 1
    self.__dict__.update(_served=served, _clamp_logits=served > 2)
    return _generate(self, *args, **kwargs)


@functools.wraps(_forward)
def forward(self, *args, **kwargs):
    out = _forward(self, *args, **kwargs)
    if self.__dict__.get("_clamp_logits", False):
        out.logits = torch.nn.functional.hardtanh(out.logits, -1e4, 1e4)
    return out


transformers.WhisperForConditionalGeneration.generate = generate
transformers.WhisperForConditionalGeneration.forward = forward
"""

# The release takes effect where transformers is imported, as an installed release would: a hook
# from interpreter start patches transformers when it loads.  Importing it at start in every Python
# instead slowed each child that never uses it (inductor's six vector-instruction probes in each
# compiling process, pip, collect_env): 30 s more per compile.
LOAD_RELEASE = f"""import importlib.abc
import importlib.util
import sys


class ReleaseOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "transformers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def load_and_patch(module):
            load(module)
            import {RELEASE}  # noqa: F401

        spec.loader.exec_module = load_and_patch
        return spec


sys.meta_path.insert(0, ReleaseOnImport())
"""


def test_a_recompile_while_timed_gives_a_repro_that_recompiles_on_the_same_stack(tmp_path):
    """A stack that recompiles after warm-up: compile health is a REGRESSION naming the failed
    guard, and the repro.py written for it, run alone on the same stack (without whisper_perf),
    compiles graphs after its own warm-up and logs the same guard."""
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / f"{RELEASE}.py").write_text(RECOMPILING_RELEASE)
    (stack / "sitecustomize.py").write_text(LOAD_RELEASE)
    results = tmp_path / "results"
    result = run_suite("--variant", "compiled", "--limit", "1", "--rounds", "1", "--results-dir", str(results),
                       "--baselines", str(tmp_path / "none"), diagnostics="compile health",
                       env={"PYTHONPATH": os.pathsep.join(filter(None, [str(stack), os.environ.get("PYTHONPATH")]))})
    assert result.returncode == 1, result.output[-4000:]
    (run_file,) = results.glob("*/*.json")
    run = json.loads(run_file.read_text())
    health = next(v for v in run["verdicts"] if v["check"] == "compile health")
    assert health["outcome"] == "regression" and "_clamp_logits" in health["message"], health
    folder = Path(run["bug_reports"]["tiny.en/compiled"])
    assert "recompiles while timed" in (folder / "report.md").read_text()
    done = run_repro(folder, tmp_path, "--rounds", "1", stack=stack)  # the first timed call recompiles
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    compiled = re.search(r"graphs compiled after warm-up: (\d+)", done.stdout)
    assert compiled and int(compiled.group(1)) >= 1, done.stdout
    assert "_clamp_logits" in done.stderr, done.stderr[-3000:]  # torch's recompile log names the guard
    # the same repro.py on the stack without that release: nothing compiled after warm-up
    clean = run_repro(folder, tmp_path / "clean", "--rounds", "1")
    assert re.search(r"graphs compiled after warm-up: 0\b", clean.stdout), clean.stdout + clean.stderr[-3000:]


def _run(**fields) -> RunResult:
    return RunResult(hardware={"key": "k"}, software={}, finished="", exit_status=1, options={}, **fields)


def test_one_finding_per_variant_a_failure_first_then_a_recompile_then_a_regression():
    """b's speed check regressed before its compile health did (the order a run writes them): the
    recompile is its finding, since it explains the slower times."""
    regression = Verdict("speedup", Outcome.REGRESSION, "speedup 0.9x below 1.0x", speed=True)
    recompile = Verdict("compile health", Outcome.REGRESSION, "2 recompile(s) during the timed rounds")
    run = _run(failures=[Failure("m", "a", "build", "a could not be built: killed by SIGSEGV in x")],
               verdicts=[VerdictRecord("m", "a", regression), VerdictRecord("m", "b", regression),
                         VerdictRecord("m", "b", recompile), VerdictRecord("m", "c", regression),
                         VerdictRecord("m", "d", Verdict("speedup", Outcome.PASS, "fine", speed=True))])
    found = {f.variant: f for f in findings(run)}
    assert sorted(found) == ["a", "b", "c"]
    assert found["a"].kind == "crash" and found["a"].title == "m a crashes (build)"
    assert found["b"].kind == "recompile" and found["c"] == Finding(
        "m", "c", "regression", "m c: speedup regressed", "speedup 0.9x below 1.0x", "speedup within the baseline's tolerance")


def test_bisect_names_the_bug_report_folders_of_the_first_bad_version(tmp_path):
    """The results files of a probe's runs name their folders; bisect's report lists the first bad one's."""
    from whisper_perf.commands.bisect import bug_reports_of
    from whisper_perf.commands.bisect_report import render
    from whisper_perf.record.results import write_run

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


def _undefined_names(source: str) -> set[str]:
    """Global names the module's code reads but neither defines, imports nor gets from builtins."""
    import builtins
    import symtable

    top = symtable.symtable(source, "repro.py", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    missing, tables = set(), [top]
    while tables:
        table = tables.pop()
        tables += table.get_children()
        missing |= {s.get_name() for s in table.get_symbols()
                    if (s.is_global() or table is top and s.is_referenced()) and s.get_name() not in defined
                    and not hasattr(builtins, s.get_name())}
    return missing


@pytest.mark.parametrize("build", [
    {"prebuilt_cache": True, "injected_slowdown": 0.0},
    {"prebuilt_cache": False, "injected_slowdown": 0.1, "injected_on": "host"},
    {"prebuilt_cache": True, "injected_slowdown": 0.05, "injected_on": "device"}])
def test_the_suites_code_copied_into_repro_py_finds_every_name_it_uses(build):
    """repro.py copies the suite's own code verbatim (the prebuilt cache, the injected slowdowns):
    every name that code reads must be imported or defined by the template around it."""
    from importlib import resources

    from whisper_perf.record.bug_report import _helpers

    template = resources.files("whisper_perf").joinpath("data/repro.py.in").read_text(encoding="utf-8")
    imports = [line for line in template.splitlines() if line.startswith(("import ", "from "))]
    source = "\n".join(imports) + "\n\n" + _helpers(build)
    assert _undefined_names(source) == set()
    assert _undefined_names(source.replace("import statistics\n", "")) == (
        {"statistics"} if build.get("injected_on") == "device" else set())  # the check sees a missing import

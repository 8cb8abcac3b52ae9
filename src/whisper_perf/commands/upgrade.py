"""Upgrade gating: the same suite in several environments on the same machine, side by side.

    nox -s upgrade -- --to "transformers==4.46.2"            # the current environment vs that one
    nox -s upgrade -- --from "transformers==4.46.2" --to "transformers==5.24.0"
    nox -s matrix -- --env "transformers==4.46.2" --env "transformers==5.24.0"
    whisper-perf upgrade --to "transformers==4.46.2" -- --limit 3

An environment is a set of requirements (``torch==2.9.1 transformers==4.46.2``); ``current`` is
the Python running this command.  Any other is a virtual environment under
``.nox/environments/<name>`` with torch (the one named, else the current version, pinned),
this package in editable mode and the named requirements; it is reused when it already holds
them (whisper_perf.environments).  The suite runs in each environment (``--repeats`` times,
alternating the order, so that machine drift does not favour one side), each run a separate
process writing its own results file, and the report compares every environment with the first:

* per model x variant: speedup, compiled time and the eager reference's time on each side with
  intervals, the change with its interval (independent bootstraps of both sides; every run's times
  brought to one machine speed by its torch-free probe, comparison.at_one_speed) and a verdict: a regression when the
  whole interval of a change lies beyond the hardware's tolerance (verdicts.credible_change), so
  an upgrade that slows eager is a regression, not a "better speedup";
* WER on each side; compile health (graphs, graph breaks, recompiles while timed) and the first
  compiled call, every run compiling with empty caches of its own (both sides alike: cold, or on a
  GPU warm from the fresh process that built each variant first, --isolate-builds); peak memory
  and what the measured calls added to it (a build that loads more, such as torch's CUDA build on
  a CPU, raises the first, not the second);
* an environment that cannot be installed, or a variant that fails to build or run on one side,
  is a red entry with its error, not a crash of the comparison.

Written to ``results/upgrade/<time>/`` (``upgrade.md``, ``upgrade.json``, each environment's
results), never over an earlier comparison.

Exit status: 0 no regression; 1 a change regressed, or an environment could not be installed or
a run of it failed; 4 usage error (bad options), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import environments
from ..errors import EXIT_OK, EXIT_REGRESSION
from ..judge import baselines
from ..judge.stats import interval_text
from ..record.report import md_table
from ..record.results import RunResult, load_run
from . import Parser, comparison, run_command
from .comparison import compare, failed

CURRENT = "current"


@dataclass
class Environment:
    spec: str  # "current" or requirements separated by spaces
    python: str = ""
    label: str = ""
    error: str = ""  # why it could not be installed
    runs: list[RunResult] = field(default_factory=list)
    run_errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.spec == CURRENT:
            return CURRENT
        return re.sub(r"[^A-Za-z0-9.]+", "-", self.spec).strip("-")


# ---- run: install the environments and run the suite in each ----

def library_versions(python: str) -> dict:
    """torch's and transformers' versions in the environment of ``python``."""
    out = subprocess.run([python, "-c", "import json, torch, transformers; print(json.dumps({'torch': "
                          "torch.__version__, 'transformers': transformers.__version__}))"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(((out.stderr or out.stdout).strip().splitlines() or ["cannot import torch"])[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def requirement_groups(spec: str) -> list[str]:
    """The environment's requirements as environments.prepare takes them: torch first (the one
    named, else the current version pinned, so that no other requirement moves it), then the rest.
    pip options belong to the requirement before them: in "torch --pre --index-url URL
    transformers" the index is torch's."""
    groups: dict[str, list[str]] = {"torch": [], "rest": []}
    current, tokens = "rest", spec.split()
    while tokens:
        token = tokens.pop(0)
        if token.startswith("-"):
            groups[current].append(token)
            if "=" not in token and token not in FLAG_OPTIONS and tokens:
                groups[current].append(tokens.pop(0))  # the option's value
            continue
        current = "torch" if re.match(r"torch\b", token) else "rest"
        groups[current].append(token)
    if not groups["torch"]:
        import torch
        from packaging.version import Version

        groups["torch"] = [f"torch=={Version(torch.__version__).base_version}"]
    return [" ".join(groups["torch"]), " ".join(groups["rest"])]


FLAG_OPTIONS = {"--pre", "--upgrade", "-U", "--no-deps", "--force-reinstall"}  # pip options without a value


def prepare(env: Environment, root: Path) -> Environment:
    """Install ``env`` (or find it installed); on failure, ``env.error`` says why."""
    try:
        if env.spec == CURRENT:
            env.python = sys.executable
        else:
            env.python = str(environments.prepare(root / ".nox" / "environments" / env.name,
                                                  requirement_groups(env.spec), root, environments.run_quietly))
        versions = library_versions(env.python)
        env.label = f"{env.spec} (torch {versions['torch']}, transformers {versions['transformers']})"
    except (RuntimeError, OSError) as exc:
        env.error = str(exc)
        env.label = env.label or env.spec
    return env


def run_suite(env: Environment, root: Path, folder: Path, pytest_args: list[str], index: int) -> None:
    results = folder / env.name
    log = folder / "logs" / f"{env.name}-{index:02d}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    before = set(results.glob("*/*.json"))
    # Like with like: every run compiles with empty compile caches of its own (the current side's
    # are warm from earlier runs), so the first compiled call of each side is a cold one; on a GPU,
    # a warm one on both sides (--isolate-builds fills the caches in a fresh process first).
    caches = folder / "compile-caches" / f"{env.name}-{index:02d}"
    cold = {"TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"), "TRITON_CACHE_DIR": str(caches / "triton")}
    with log.open("w") as out:
        done = subprocess.run([env.python, "-m", "pytest", "perf_tests", "-p", "no:cacheprovider", "-q",
                               "--results-dir", str(results), *pytest_args], cwd=root, stdout=out,
                              stderr=subprocess.STDOUT, env={**os.environ, **cold})
    new = sorted(set(results.glob("*/*.json")) - before)
    if not new:
        env.run_errors.append(f"run {index + 1}: exit {done.returncode}, no results; see {log}")
        return
    env.runs.append(load_run(new[-1]))


# ---- render ----

def _side_cells(data: dict) -> list[str]:
    if "error" in data:
        return [f"**failed: {data['error']}**", "-", "-"]
    return [interval_text(data.get("speedup")), interval_text(data.get("seconds"), " s", 2), f"{100 * data['wer']:.1f}%"]


def _change_cells(change: dict) -> list[str]:
    verdict = change.get("verdict", "-")
    parts = [f"speedup x{interval_text(change['speedup'], '', 3)}" if change.get("speedup") else "",
             f"time x{interval_text(change['seconds'], '', 3)}" if change.get("seconds") else "",
             f"eager time x{interval_text(change['reference_seconds'], '', 3)}" if change.get("reference_seconds")
             else "", change.get("detail", ""), comparison.kernels_text(change["kernels"]) if "kernels" in change else ""]
    return [f"**{verdict.upper()}**" if verdict in comparison.FAILING else verdict,
            "; ".join(p for p in parts if p)]


def comparison_table(report: dict) -> str:
    envs = report["environments"]
    header = ["model", "variant"]
    for e in envs:
        header += [f"speedup {e['name']}", f"time s {e['name']}", f"WER {e['name']}"]
    for e in envs[1:]:
        header += [f"verdict {e['name']}", "change"]
    rows = []
    for row in report["rows"]:
        cells = [row["model"], row["variant"]]
        for e in envs:
            cells += _side_cells(row["sides"].get(e["name"], {"error": "not measured"}))
        for e in envs[1:]:
            cells += _change_cells(row["changes"].get(e["name"], {}))
        rows.append(cells)
    return md_table(header, rows)


def _health_cell(data: dict) -> str:
    if "error" in data:
        return "failed"
    c = data.get("compile")
    text = f"{c['graphs']} / {c['graph_breaks']} / {c['recompiles_timed']}" if c else "eager"
    if data.get("first_call_seconds") and c:
        text += f"; {data['first_call_seconds']:.1f} s"
    if data.get("peak_memory_bytes"):
        text += f"; {data['peak_memory_bytes'] / 2**20:,.0f} MiB"
        if data.get("memory_rise_bytes") is not None:
            text += f" ({data['memory_rise_bytes'] / 2**20:,.0f} MiB added by the calls)"
    return text


def health_table(report: dict) -> str:
    names = [e["name"] for e in report["environments"]]
    return md_table(["model", "variant", *names], [
        [row["model"], row["variant"], *(_health_cell(row["sides"].get(n, {"error": ""})) for n in names)]
        for row in report["rows"]])


def render(report: dict, hardware_key: str) -> str:
    envs, t = report["environments"], report["tolerances"]
    lines = [f"# Upgrade comparison on {hardware_key}", ""]
    lines += [f"- `{e['name']}`: {e['label']}" + (f" — **could not be installed: {e['error']}**" if e["error"] else "")
              + (f" — {'; '.join(e['run_errors'])}" if e["run_errors"] else "") for e in envs]
    lines += ["", f"Each environment against `{envs[0]['name']}`; a change is a regression when its whole 95% "
              f"interval lies beyond the tolerance (speedup {t['speedup']:.0%}, compiled time "
              f"{t['compiled_time']:.0%}, WER {100 * t['wer']:.1f} points)"
              + ("; with --criterion kernels, a changed fingerprint of the code run fails it too" if
                 report.get("criterion") == "kernels" else "; a changed fingerprint of the code run is reported")
              + ".", "", comparison_table(report)]
    lines += ["", "Compile health and memory per environment (graphs / graph breaks / recompiles while timed; "
              "first compiled call, every run compiling with empty compile caches of its own, so both sides are "
              "cold; peak memory, and what the measured calls added to it: a build that loads more libraries "
              "(a CUDA build of torch on a CPU) raises the peak, not what the calls add):", "", health_table(report)]
    return "\n".join(lines) + "\n"


# ---- main ----

def _matrix_from_pyproject(root: Path) -> list[str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return []
    data = tomllib.loads((root / "pyproject.toml").read_text())
    return list(data.get("tool", {}).get("whisper-perf", {}).get("matrix", []))


def _parser() -> Parser:
    parser = Parser(prog="whisper-perf upgrade", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="before", default=CURRENT,
                        help='requirements of the "before" side, e.g. "transformers==4.46.2" (default: current)')
    parser.add_argument("--to", dest="after", default=None, help="requirements of the side to upgrade to")
    parser.add_argument("--env", action="append", default=None,
                        help="a matrix environment (repeatable; default: [tool.whisper-perf] matrix in pyproject.toml)")
    parser.add_argument("--matrix", action="store_true", help="compare the --env environments (or pyproject's)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per environment, alternating the order")
    parser.add_argument("--criterion", choices=["speed", "kernels"], default="speed",
                        help="what fails the comparison: speed (speedup, times, WER, recompiles; default) or kernels "
                             "(those, and any change in the fingerprint of the code run: generated kernels, aten ops "
                             "and device kernels per step)")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("pytest_args", nargs="*", help="pytest arguments for every run (after --)")
    return parser


def _specs(parser: Parser, args: argparse.Namespace) -> list[str]:
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.matrix:
        specs = args.env or _matrix_from_pyproject(args.root)
        if len(specs) < 2:
            parser.error("a matrix needs two or more environments: --env ... --env ..., or "
                         "[tool.whisper-perf] matrix = [...] in pyproject.toml")
        return specs
    if not args.after:
        parser.error('--to is required, e.g. --to "transformers==4.46.2" (--from defaults to the current environment)')
    return [args.before, args.after]


def _run_all(envs: list[Environment], args: argparse.Namespace, folder: Path) -> None:
    """Prepare every environment, then run the suite in each, alternating the order per repeat."""
    for env in envs:
        print(f"environment {env.spec}: preparing", flush=True)
        prepare(env, args.root)
        print(f"environment {env.name}: {env.error or env.label}", flush=True)
    pytest_args = list(args.pytest_args)
    if "--compile-latency" not in pytest_args:
        pytest_args = ["--compile-latency", "never", *pytest_args]
    for repeat in range(args.repeats):
        for env in envs if repeat % 2 == 0 else reversed(envs):
            if not env.error:
                print(f"run {repeat + 1}/{args.repeats} in {env.name}", flush=True)
                run_suite(env, args.root, folder, pytest_args, repeat)


def _write(report: dict, text: str, folder: Path, hardware_key: str) -> None:
    (folder / "upgrade.md").write_text(text, encoding="utf-8")
    (folder / "upgrade.json").write_text(json.dumps({"hardware_key": hardware_key, **report}, indent=1,
                                                    default=str) + "\n", encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    envs = [Environment(spec) for spec in _specs(parser, args)]
    from ..inputs.hardware import detect_hardware

    key = detect_hardware("auto").key
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = args.root / "results" / "upgrade" / f"{stamp}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=False)
    _run_all(envs, args, folder)
    report = compare(envs, baselines.tolerances_for(args.root / "baselines", key), args.criterion)
    text = render(report, key)
    _write(report, text, folder, key)
    print(text)
    print(f"Written to {folder}")
    return EXIT_REGRESSION if failed(report) else EXIT_OK


if __name__ == "__main__":
    sys.exit(run_command(main))

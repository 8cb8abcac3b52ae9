"""Upgrade gating: the same suite in several environments on the same machine, side by side.

    nox -s upgrade -- --to "transformers==4.46.2"            # the current environment vs that one
    nox -s upgrade -- --from "transformers==4.46.2" --to "transformers==5.24.0"
    nox -s matrix -- --env "transformers==4.46.2" --env "transformers==5.24.0"
    python -m whisper_perf.commands.upgrade --to "transformers==4.46.2" -- --limit 3

An environment is a set of requirements (``torch==2.9.1 transformers==4.46.2``); ``current`` is
the Python running this command.  Any other is a virtual environment under
``.nox/environments/<name>`` with torch (the one named, else the current version, pinned),
this package in editable mode and the named requirements; it is reused when it already holds
them (whisper_perf.environments).  The suite runs in each environment (``--repeats`` times,
alternating the order, so that machine drift does not favour one side), each run a separate
process writing its own results file, and the report compares every environment with the first:

* per model x variant: speedup, compiled time and the eager reference's time on each side with
  intervals, the change with its interval (independent bootstraps of both sides; times brought to
  the first side's machine speed by the torch-free probe) and a verdict: a regression when the
  whole interval of a change lies beyond the hardware's tolerance (verdicts.credible_change), so
  an upgrade that slows eager is a regression, not a "better speedup";
* WER on each side; compile health (graphs, graph breaks, recompiles while timed) and the first
  compiled call, every run compiling with empty caches of its own (both sides cold); peak memory
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
import dataclasses
import datetime
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import baselines, environments
from ..errors import EXIT_OK, EXIT_REGRESSION
from ..report import md_table
from ..results import MeasurementRecord, RunResult, load_run
from ..stats import change_interval, interval_text, speedup_interval, total_interval
from ..machine_speed import adjustment
from ..verdicts import credible_change
from . import Parser, run_command

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
    # Like with like: every run compiles with empty compile caches of its own, so the first
    # compiled call of each side is a cold one (the current side's caches are warm from earlier runs).
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


# ---- analyse: every environment against the first ----

def measured(envs: list[Environment]) -> list[tuple[str, str]]:
    """Every model x variant that any run measured or failed, in order of appearance."""
    keys = [(m.model, m.variant) for env in envs for run in env.runs for m in run.measurements]
    keys += [(f.model, f.variant) for env in envs for run in env.runs for f in run.failures]
    return list(dict.fromkeys(keys))


def merged(runs: list[RunResult], model: str, variant: str) -> MeasurementRecord | None:
    """One environment's measurement of model x variant over its runs: the latest, with the
    rounds of every run."""
    found = [m for run in runs if (m := run.measurement(model, variant))]
    if not found:
        return None
    return dataclasses.replace(found[-1], samples=[p for m in found for p in m.samples],
                               reference_samples=[p for m in found for p in m.reference_samples])


def side(env: Environment, model: str, variant: str) -> tuple[dict, MeasurementRecord | None]:
    """What one environment measured of model x variant, as report data, and its merged measurement."""
    m = merged(env.runs, model, variant)
    if env.error or m is None:
        failures = [f.error for run in env.runs for f in run.failures if (f.model, f.variant) == (model, variant)]
        return {"error": env.error or "; ".join(failures) or "not measured"}, None
    compiled, eager = m.seconds_table(), m.seconds_table(reference=True)
    totals = m.diagnostics.compile
    data = {"seconds": total_interval(compiled).as_dict(), "wer": m.summary.wer, "rounds": len(compiled),
            "first_call_seconds": m.diagnostics.first_call_seconds, "machine_probe_ms": m.summary.machine_probe_ms,
            "compile": None if totals is None else {"graphs": totals.graphs, "graph_breaks": totals.graph_breaks,
                                                    "recompiles_timed": totals.recompiles_timed},
            "peak_memory_bytes": m.diagnostics.peak_memory_bytes(),
            "memory_rise_bytes": m.diagnostics.memory_rise_bytes()}
    if eager:
        data["speedup"] = speedup_interval(eager, compiled).as_dict()
        data["reference_seconds"] = total_interval(eager).as_dict()
    return data, m


# (key in the change, label, tolerance, higher is better): the changes judged against a tolerance;
# the eager reference's time too: a change that slows eager (what most users run) is a regression,
# not a "better speedup"
JUDGED = (("speedup", "speedup", "speedup", True), ("seconds", "time", "compiled_time", False),
          ("reference_seconds", "eager time", "compiled_time", False))


def _time_intervals(before: MeasurementRecord, after: MeasurementRecord, confidence: float) -> tuple[dict, str]:
    """The change of the variant's and its reference's summed time, ``after`` brought to
    ``before``'s machine speed (machine_speed.adjustment on the two sides' probes); none when the
    speed moved too far to adjust for, with why."""
    factor, moved = adjustment(after.summary.machine_probe_ms, before.summary.machine_probe_ms)
    if moved:
        return {}, moved
    scale = lambda table: [[seconds * (factor or 1.0) for seconds in row] for row in table]  # noqa: E731
    intervals = {"seconds": change_interval(before.seconds_table(), scale(after.seconds_table()), confidence)}
    if before.reference_samples and after.reference_samples:
        intervals["reference_seconds"] = change_interval(before.seconds_table(True), scale(after.seconds_table(True)),
                                                         confidence)
    return intervals, f"at equal machine speed (x{factor:.3f})" if factor else ""


def change(before: MeasurementRecord, after: MeasurementRecord, wer: tuple[float, float], recompiles: int,
           tolerances, confidence: float = 0.95) -> dict:
    """after against before: the change of speedup and times with intervals, and a verdict."""
    intervals, speed_note = _time_intervals(before, after, confidence)
    if before.reference_samples and after.reference_samples:
        intervals["speedup"] = change_interval((before.seconds_table(True), before.seconds_table()),
                                               (after.seconds_table(True), after.seconds_table()), confidence)
    worse, better = [], []
    for key, label, tolerance, higher_is_better in JUDGED:
        if key in intervals:
            found = credible_change(intervals[key], 1.0, getattr(tolerances, tolerance), higher_is_better)
            shown = f"{label} {100 * (intervals[key].estimate - 1):+.1f}%"
            if found == "worse":
                worse.append(shown)
            elif found == "better":
                better.append(shown)
    if abs(wer[1] - wer[0]) > tolerances.wer:
        worse.append(f"WER {100 * wer[0]:.2f}% -> {100 * wer[1]:.2f}%")
    if recompiles:
        worse.append(f"{recompiles} recompile(s) while timed")
    verdict = "regression" if worse else "improved" if better else "no credible change"
    detail = "; ".join(worse or better) or (
        f"within tolerances (speedup {tolerances.speedup:.0%}, time {tolerances.compiled_time:.0%})")
    detail += f"; times {speed_note}" if speed_note else ""
    return {**{k: v.as_dict() for k, v in intervals.items()}, "verdict": verdict, "detail": detail}


def compare_row(envs: list[Environment], model: str, variant: str, tolerances, confidence: float = 0.95) -> dict:
    base = envs[0]
    sides = {env.name: side(env, model, variant) for env in envs}
    (reference, before) = sides[base.name]
    row = {"model": model, "variant": variant, "sides": {name: data for name, (data, _) in sides.items()},
           "changes": {}}
    for env in envs[1:]:
        data, after = sides[env.name]
        if before is None or after is None:
            row["changes"][env.name] = {"verdict": "failed", "detail": data.get("error") or
                                        f"{base.name}: {reference.get('error')}"}
            continue
        recompiles = (data["compile"] or {}).get("recompiles_timed", 0)
        row["changes"][env.name] = change(before, after, (reference["wer"], data["wer"]), recompiles, tolerances,
                                          confidence)
    return row


def compare(envs: list[Environment], tolerances) -> dict:
    """Every environment against the first: rows of the report, as data."""
    return {"environments": [{"name": e.name, "spec": e.spec, "label": e.label, "error": e.error,
                              "runs": len(e.runs), "run_errors": e.run_errors} for e in envs],
            "tolerances": {"speedup": tolerances.speedup, "compiled_time": tolerances.compiled_time,
                           "wer": tolerances.wer},
            "rows": [compare_row(envs, model, variant, tolerances) for model, variant in measured(envs)]}


def failed(report: dict) -> bool:
    """Whether any environment failed to install or run, or any change regressed or failed."""
    return any(e["error"] or e["run_errors"] for e in report["environments"]) or any(
        c["verdict"] in ("regression", "failed") for row in report["rows"] for c in row["changes"].values())


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
             else "", change.get("detail", "")]
    return [f"**{verdict.upper()}**" if verdict in ("regression", "failed") else verdict,
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
              f"{t['compiled_time']:.0%}, WER {100 * t['wer']:.1f} points).", "", comparison_table(report)]
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
    parser = Parser(prog="python -m whisper_perf.commands.upgrade", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="before", default=CURRENT,
                        help='requirements of the "before" side, e.g. "transformers==4.46.2" (default: current)')
    parser.add_argument("--to", dest="after", default=None, help="requirements of the side to upgrade to")
    parser.add_argument("--env", action="append", default=None,
                        help="a matrix environment (repeatable; default: [tool.whisper-perf] matrix in pyproject.toml)")
    parser.add_argument("--matrix", action="store_true", help="compare the --env environments (or pyproject's)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per environment, alternating the order")
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
    from ..hardware import detect_hardware

    key = detect_hardware("auto").key
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = args.root / "results" / "upgrade" / f"{stamp}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=False)
    _run_all(envs, args, folder)
    report = compare(envs, baselines.tolerances_for(args.root / "baselines", key))
    text = render(report, key)
    _write(report, text, folder, key)
    print(text)
    print(f"Written to {folder}")
    return EXIT_REGRESSION if failed(report) else EXIT_OK


if __name__ == "__main__":
    sys.exit(run_command(main))

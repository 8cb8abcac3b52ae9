"""Upgrade gating: the same suite in several environments on the same machine, side by side.

    nox -s upgrade -- --to "transformers==4.46.2"            # the current environment vs that one
    nox -s upgrade -- --from "transformers==4.46.2" --to "transformers==5.24.0"
    nox -s matrix -- --env "transformers==4.46.2" --env "transformers==5.24.0"

An environment is a set of requirements (``torch==2.9.1 transformers==4.46.2``); ``current`` is
the Python running this command.  Any other is a virtual environment under
``.nox/environments/<name>`` with torch (the one named, else the current version, pinned),
this package in editable mode and the named requirements; it is reused when it already holds
them.  The suite runs in each environment (``--repeats`` times, alternating the order, so that
machine drift does not favour one side), each run a separate process writing its own results
file, and the report compares every environment with the first:

* per model x variant: speedup and compiled time on each side with intervals, the change with
  its interval (independent bootstraps of both sides) and a verdict: a regression when the
  whole interval of the change lies beyond the hardware's tolerance;
* WER on each side; compile health (graphs, graph breaks, recompiles while timed, first
  compiled call) and peak memory on each side;
* an environment that cannot be installed, or a variant that fails to build or run on one side,
  is a red entry with its error, not a crash of the comparison.

Written to ``results/upgrade/<time>/`` (``upgrade.md``, ``upgrade.json``, each environment's
results), never over an earlier comparison.  Exit status 1 when anything regressed or failed.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .stats import interval_text

CURRENT = "current"


@dataclass
class Environment:
    spec: str  # "current" or requirements separated by spaces
    python: str = ""
    label: str = ""
    error: str = ""  # why it could not be installed
    runs: list[dict] = field(default_factory=list)  # results data of its runs
    run_errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.spec == CURRENT:
            return CURRENT
        return re.sub(r"[^A-Za-z0-9.]+", "-", self.spec).strip("-")


def _current_versions(python: str) -> dict:
    out = subprocess.run([python, "-c", "import json, torch, transformers; print(json.dumps({'torch': "
                          "torch.__version__, 'transformers': transformers.__version__}))"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError((out.stderr or out.stdout).strip().splitlines()[-1:] or ["cannot import torch"])
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare(env: Environment, root: Path) -> Environment:
    """Install ``env`` (or find it installed); on failure, ``env.error`` says why."""
    try:
        if env.spec == CURRENT:
            env.python = sys.executable
        else:
            requirements = env.spec.split()
            if not any(re.match(r"torch\b", r) for r in requirements):
                from packaging.version import Version

                import torch

                requirements.insert(0, f"torch=={Version(torch.__version__).base_version}")
            torch_req = [r for r in requirements if re.match(r"torch\b", r)]
            others = [r for r in requirements if r not in torch_req]
            folder = root / ".nox" / "environments" / env.name
            python = folder / "bin" / "python"
            wanted = "\n".join([*requirements, hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()])
            marker = folder / ".whisper-perf-requirements"
            if not (marker.exists() and marker.read_text() == wanted and python.exists()):
                steps = [[sys.executable, "-m", "venv", str(folder)],
                         [str(python), "-m", "pip", "install", "-q", *torch_req],  # first, so nothing re-resolves it
                         [str(python), "-m", "pip", "install", "-q", "-e", str(root), *others]]
                for step in steps:
                    done = subprocess.run(step, capture_output=True, text=True)
                    if done.returncode != 0:
                        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
                        raise RuntimeError(f"`{' '.join(step[2:])}` failed: {tail}")
                marker.write_text(wanted)
            env.python = str(python)
        versions = _current_versions(env.python)
        env.label = f"{env.spec} (torch {versions['torch']}, transformers {versions['transformers']})" \
            if env.spec != CURRENT else f"current (torch {versions['torch']}, transformers {versions['transformers']})"
    except (RuntimeError, OSError) as exc:
        env.error = str(exc)
        env.label = env.label or env.spec
    return env


def run_suite(env: Environment, root: Path, folder: Path, pytest_args: list[str], index: int) -> None:
    from .results import load_run

    results = folder / env.name
    log = folder / "logs" / f"{env.name}-{index:02d}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    before = set(results.glob("*/*.json"))
    with log.open("w") as out:
        done = subprocess.run([env.python, "-m", "pytest", "perf_tests", "-p", "no:cacheprovider", "-q",
                               "--results-dir", str(results), *pytest_args], cwd=root, stdout=out,
                              stderr=subprocess.STDOUT)
    new = sorted(set(results.glob("*/*.json")) - before)
    if not new:
        env.run_errors.append(f"run {index + 1}: exit {done.returncode}, no results; see {log}")
        return
    env.runs.append(load_run(new[-1]))


def _tables(m: dict) -> tuple:
    seconds = lambda passes: [[s[1] for s in p] for p in passes]  # noqa: E731
    return seconds(m["reference_samples"]), seconds(m["samples"])


def _merged(runs: list[dict], model: str, variant: str) -> dict | None:
    """One environment's measurements of model x variant over its runs (rounds of every run)."""
    found = [m for run in runs for m in run["measurements"] if (m["model"], m["variant"]) == (model, variant)]
    if not found:
        return None
    merged = dict(found[-1])
    merged["samples"] = [p for m in found for p in m["samples"]]
    merged["reference_samples"] = [p for m in found for p in m["reference_samples"]]
    return merged


def compare(envs: list[Environment], tolerances) -> dict:
    """Every environment against the first: rows of the report, as data."""
    from .stats import change_interval, speedup_interval, total_interval

    base = envs[0]
    keys = []
    for env in envs:
        for run in env.runs:
            for m in run["measurements"]:
                if (m["model"], m["variant"]) not in keys:
                    keys.append((m["model"], m["variant"]))
            for f in run.get("failures", []):
                if (f["model"], f["variant"]) not in keys:
                    keys.append((f["model"], f["variant"]))
    rows = []
    for model, variant in keys:
        row = {"model": model, "variant": variant, "sides": {}, "changes": {}}
        for env in envs:
            m = _merged(env.runs, model, variant)
            failures = [f["error"] for run in env.runs for f in run.get("failures", [])
                        if (f["model"], f["variant"]) == (model, variant)]
            if env.error or m is None:
                row["sides"][env.name] = {"error": env.error or "; ".join(failures) or "not measured"}
                continue
            eager, compiled = _tables(m)
            diag = m.get("diagnostics") or {}
            side = {"seconds": total_interval(compiled).as_dict(), "wer": m["summary"]["wer"],
                    "rounds": len(compiled), "first_call_seconds": diag.get("first_call_seconds"), "compile": None,
                    "peak_memory_bytes": ((diag.get("variant") or {}).get("peak_memory") or {}).get("bytes")}
            if diag.get("warmup_compile"):
                side["compile"] = {"graphs": diag["warmup_compile"]["graphs"],
                                   "graph_breaks": diag["warmup_compile"]["graph_breaks"]
                                   + (diag.get("timed_compile") or {}).get("graph_breaks", 0),
                                   "recompiles_timed": (diag.get("timed_compile") or {}).get("recompiles", 0)}
            if eager:
                side["speedup"] = speedup_interval(eager, compiled).as_dict()
            row["sides"][env.name] = side
            row["sides"][env.name]["_tables"] = (eager, compiled)
        reference = row["sides"].get(base.name, {})
        for env in envs[1:]:
            side = row["sides"].get(env.name, {})
            if "error" in side or "error" in reference:
                row["changes"][env.name] = {"verdict": "failed", "detail": side.get("error") or
                                            f"{base.name}: {reference.get('error')}"}
                continue
            (e_a, c_a), (e_b, c_b) = reference["_tables"], side["_tables"]
            change = {"seconds": change_interval(c_a, c_b).as_dict()}
            problems, better = [], []
            if e_a and e_b:
                change["speedup"] = change_interval((e_a, c_a), (e_b, c_b)).as_dict()
                if change["speedup"]["high"] < 1 - tolerances.speedup:
                    problems.append(f"speedup {100 * (change['speedup']['estimate'] - 1):+.1f}%")
                elif change["speedup"]["low"] > 1 + tolerances.speedup:
                    better.append(f"speedup {100 * (change['speedup']['estimate'] - 1):+.1f}%")
            if change["seconds"]["low"] > 1 + tolerances.compiled_time:
                problems.append(f"time {100 * (change['seconds']['estimate'] - 1):+.1f}%")
            elif change["seconds"]["high"] < 1 - tolerances.compiled_time:
                better.append(f"time {100 * (change['seconds']['estimate'] - 1):+.1f}%")
            if abs(side["wer"] - reference["wer"]) > tolerances.wer:
                problems.append(f"WER {100 * reference['wer']:.2f}% -> {100 * side['wer']:.2f}%")
            if side.get("compile") and side["compile"]["recompiles_timed"]:
                problems.append(f"{side['compile']['recompiles_timed']} recompile(s) while timed")
            change["verdict"] = "regression" if problems else "improved" if better else "no credible change"
            change["detail"] = "; ".join(problems or better) or (
                f"within tolerances (speedup {tolerances.speedup:.0%}, time {tolerances.compiled_time:.0%})")
            row["changes"][env.name] = change
        for side in row["sides"].values():
            side.pop("_tables", None)
        rows.append(row)
    return {"environments": [{"name": e.name, "spec": e.spec, "label": e.label, "error": e.error,
                              "runs": len(e.runs), "run_errors": e.run_errors} for e in envs],
            "tolerances": {"speedup": tolerances.speedup, "compiled_time": tolerances.compiled_time,
                           "wer": tolerances.wer},
            "rows": rows}


def render(report: dict, hardware_key: str) -> str:
    envs = report["environments"]
    base = envs[0]
    lines = [f"# Upgrade comparison on {hardware_key}", ""]
    lines += [f"- `{e['name']}`: {e['label']}" + (f" — **could not be installed: {e['error']}**" if e["error"] else "")
              + (f" — {'; '.join(e['run_errors'])}" if e["run_errors"] else "") for e in envs]
    t = report["tolerances"]
    lines += ["", f"Each environment against `{base['name']}`; a change is a regression when its whole 95% "
              f"interval lies beyond the tolerance (speedup {t['speedup']:.0%}, compiled time "
              f"{t['compiled_time']:.0%}, WER {100 * t['wer']:.1f} points).", ""]
    header = ["model", "variant"]
    for e in envs:
        header += [f"speedup {e['name']}", f"time s {e['name']}", f"WER {e['name']}"]
    for e in envs[1:]:
        header += [f"verdict {e['name']}", "change"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report["rows"]:
        cells = [row["model"], row["variant"]]
        for e in envs:
            side = row["sides"].get(e["name"], {})
            if "error" in side:
                cells += [f"**failed: {side['error']}**", "-", "-"]
            else:
                cells += [interval_text(side.get("speedup")), interval_text(side.get("seconds"), " s", 2), f"{100 * side['wer']:.1f}%"]
        for e in envs[1:]:
            change = row["changes"].get(e["name"], {})
            verdict = change.get("verdict", "-")
            shown = f"**{verdict.upper()}**" if verdict in ("regression", "failed") else verdict
            parts = [f"speedup x{interval_text(change.get('speedup'), '', 3)}" if change.get("speedup") else "",
                     f"time x{interval_text(change.get('seconds'), '', 3)}" if change.get("seconds") else "",
                     change.get("detail", "")]
            cells += [shown, "; ".join(p for p in parts if p).replace("|", "/")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "Compile health and memory per environment (graphs / graph breaks / recompiles while timed; "
              "first compiled call; peak memory):", ""]
    header = ["model", "variant"] + [e["name"] for e in envs]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report["rows"]:
        cells = [row["model"], row["variant"]]
        for e in envs:
            side = row["sides"].get(e["name"], {})
            c = side.get("compile")
            text = f"{c['graphs']} / {c['graph_breaks']} / {c['recompiles_timed']}" if c else "eager"
            if side.get("first_call_seconds") and c:
                text += f"; {side['first_call_seconds']:.1f} s"
            if side.get("peak_memory_bytes"):
                text += f"; {side['peak_memory_bytes'] / 2**20:,.0f} MiB"
            cells.append("failed" if "error" in side else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _matrix_from_pyproject(root: Path) -> list[str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return []
    data = tomllib.loads((root / "pyproject.toml").read_text())
    return list(data.get("tool", {}).get("whisper-perf", {}).get("matrix", []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whisper_perf.upgrade", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="before", default=CURRENT,
                        help='requirements of the "before" side, e.g. "transformers==4.46.2" (default: current)')
    parser.add_argument("--to", dest="after", default=None, help="requirements of the side to upgrade to")
    parser.add_argument("--env", action="append", default=None,
                        help="a matrix environment (repeatable; default: [tool.whisper-perf] matrix in pyproject.toml)")
    parser.add_argument("--matrix", action="store_true", help="compare the --env environments (or pyproject's)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per environment, alternating the order")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("pytest_args", nargs="*", help="pytest arguments for every run (after --)")
    args = parser.parse_args(argv)
    if args.matrix:
        specs = args.env or _matrix_from_pyproject(args.root)
        if len(specs) < 2:
            parser.error("a matrix needs two or more environments: --env ... --env ..., or "
                         "[tool.whisper-perf] matrix = [...] in pyproject.toml")
    else:
        if not args.after:
            parser.error('--to is required, e.g. --to "transformers==4.46.2" (--from defaults to the current '
                         "environment)")
        specs = [args.before, args.after]
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    from . import baselines
    from .hardware import detect_hardware

    hardware = detect_hardware("auto")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = args.root / "results" / "upgrade" / f"{stamp}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=False)
    envs = [Environment(spec) for spec in specs]
    for env in envs:
        print(f"environment {env.spec}: preparing", flush=True)
        prepare(env, args.root)
        print(f"environment {env.name}: {env.error or env.label}", flush=True)
    pytest_args = ["--compile-latency", "never", *args.pytest_args] if "--compile-latency" not in args.pytest_args \
        else list(args.pytest_args)
    for repeat in range(args.repeats):
        order = envs if repeat % 2 == 0 else list(reversed(envs))
        for env in order:
            if env.error:
                continue
            print(f"run {repeat + 1}/{args.repeats} in {env.name}", flush=True)
            run_suite(env, args.root, folder, pytest_args, repeat)
    try:
        project = baselines.load_for(args.root / "baselines", hardware.key)
    except baselines.BaselineError:
        project = None
    report = compare(envs, project.tolerances if project else baselines.Tolerances())
    text = render(report, hardware.key)
    (folder / "upgrade.md").write_text(text, encoding="utf-8")
    (folder / "upgrade.json").write_text(json.dumps({"hardware_key": hardware.key, **report}, indent=1,
                                                    default=str) + "\n", encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    print(f"Written to {folder}")
    failed = any(e.error or e.run_errors for e in envs) or any(
        c.get("verdict") in ("regression", "failed") for row in report["rows"] for c in row["changes"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

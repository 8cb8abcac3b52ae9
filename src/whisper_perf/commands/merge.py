"""Merge results from several machines and runs into one report.

    whisper-perf merge results/runs artifacts/l4/runs artifacts/h100/runs --out results/merged

Takes results files (``results/runs/<key>/<run>.json``) or folders holding them, and writes
``merged.md`` (a table per hardware key: each model x variant of each run, with its speedup,
times, WER and verdicts), ``merged.json`` and ``merged-speedup.png`` (every hardware key's
speedups in one chart) into ``--out`` (a new folder; never over an earlier merge).

It refuses, naming the files, to mix what cannot be compared: results of another schema
version, and, within one hardware key, two runs that measured the same model x variant with
different protocols (baselines.protocol_of: dataset, number of utterances, token budget, fixed
work, dtype).  A variant's batch-1 and batched measurements (the full profile's two runs, or
``--batch N``) are two rows, each named with its batch size.

Exit status: 0 merged; 4 usage error (no results, a file that cannot be read or mixed, an
``--out`` folder that is not new), with the reason on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import EXIT_OK, UsageError
from ..files import require_new_folder
from ..judge.stats import Interval, interval_text
from ..record.report import md_table
from ..record.results import SCHEMA_VERSION, RunResult, load_run
from . import Parser, run_command


def _looks_like_results(path: Path) -> bool:
    """A folder may also hold pytest-benchmark's JSON, calibration reports...: only files that
    carry the suite's results fields are taken from a folder (a named file is always read)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # let load_run report it
    return isinstance(data, dict) and "measurements" in data and "hardware" in data


def result_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.json") if not p.name.startswith(".") and _looks_like_results(p))
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such results file or folder")
    if not files:
        raise UsageError(f"no results files in {', '.join(map(str, paths))}")
    return files


def load_all(files: list[Path], check_protocols: bool = True) -> list[RunResult]:
    """Read every file (RunResult, with its path); UsageError naming the files that cannot be mixed."""
    runs = []
    for path in files:
        try:
            runs.append(load_run(path))
        except UsageError as exc:
            raise UsageError(f"cannot merge: {exc} (this suite reads results schema_version {SCHEMA_VERSION}; "
                             "merge files of one version)") from exc
    if check_protocols:
        refuse_mixed_protocols(runs)
    return runs


def _protocol(run: RunResult, m) -> dict:
    try:
        return m.protocol
    except KeyError as exc:
        raise UsageError(f"cannot merge: {run.path}: {m.model}/{m.variant} lacks protocol field {exc}") from exc


def refuse_mixed_protocols(runs: list[RunResult]) -> None:
    """UsageError when two runs of one hardware key measured a model x variant with different protocols."""
    seen: dict = {}
    for run in runs:
        for m in run.measurements:
            measured_as = m.setup.get("slowed_of") or m.variant  # a slowed twin is measured as its variant
            ident = (run.hardware_key, m.model, measured_as, m.batch_size)
            protocol = _protocol(run, m)
            other, theirs = seen.setdefault(ident, (run.path, protocol))
            if theirs != protocol:
                diff = ", ".join(f"{k} {theirs[k]} vs {protocol[k]}" for k in protocol if theirs.get(k) != protocol[k])
                raise UsageError(f"cannot merge: {other} and {run.path} measured {ident[1]}/{m.variant_shown} on "
                                 f"{ident[0]} with different protocols ({diff}); merge runs of one protocol")


def _estimate(interval: Interval | None) -> str:
    return "-" if interval is None else f"{interval.estimate:.2f}"


def _verdicts_cell(run: RunResult, model: str, variant: str) -> str:
    failing = [v.check for v in run.verdicts_of(model, variant) if v.outcome.fails]
    if failing:
        return f"**REGRESSION: {', '.join(failing)}**"
    return run.tally(model, variant).text()


def run_rows(run: RunResult) -> list[tuple]:
    """One row per measurement of ``run``, then one per variant that failed."""
    versions = (run.path.stem if run.path else "-", run.software["torch"], run.software["transformers"])
    rows = [(*versions, m.model, m.variant_shown, interval_text(m.summary.speedup), _estimate(m.summary.seconds),
             _estimate(m.summary.reference_seconds), f"{100 * m.summary.wer:.1f}%",
             _verdicts_cell(run, m.model, m.variant)) for m in run.measurements]
    rows += [(*versions, f.model, f.variant, f"**failed ({f.stage}): {f.error}**", "-", "-", "-", "-")
             for f in run.failures]
    return rows


HEADER = ("run", "torch", "transformers", "model", "variant", "speedup [95% CI]", "variant s", "eager s", "WER",
          "verdicts")


def by_hardware_key(runs: list[RunResult]) -> dict[str, list[RunResult]]:
    """Each hardware key's runs, oldest first."""
    groups: dict[str, list[RunResult]] = {}
    for run in sorted(runs, key=lambda r: r.finished):
        groups.setdefault(run.hardware_key, []).append(run)
    return dict(sorted(groups.items()))


def render(runs: list[RunResult]) -> str:
    groups = by_hardware_key(runs)
    lines = ["# Merged results", "", f"{len(runs)} runs on {len(groups)} hardware key(s).", ""]
    for key, items in groups.items():
        lines += [f"## {key} ({items[-1].hardware['device_name']})", "",
                  md_table(HEADER, [row for run in items for row in run_rows(run)]), ""]
    return "\n".join(lines)


def latest_speedups(runs: list[RunResult]) -> dict[tuple[str, str, str], Interval]:
    """(hardware key, model, variant) -> the speedup of its latest run."""
    latest = {}
    for run in sorted(runs, key=lambda r: r.finished):
        for m in run.measurements:
            if m.summary.speedup:
                latest[(run.hardware_key, m.model, m.variant_shown)] = m.summary.speedup
    return latest


def chart(runs: list[RunResult], path: Path) -> Path | None:
    """Every hardware key's latest speedup per model x variant, one chart."""
    latest = latest_speedups(runs)
    if not latest:
        return None
    from ..record.charts import _pyplot, error_bar

    plt = _pyplot()
    labels = sorted(latest)
    keys = sorted({key for key, _, _ in labels})
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.4))
    for y, label in enumerate(labels):
        below, above = error_bar(latest[label])
        ax.errorbar(latest[label].estimate, y, xerr=[[below], [above]], fmt="o", capsize=3,
                    color=f"C{keys.index(label[0]) % 10}")
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(len(labels)), [" ".join(label) for label in labels], fontsize=8)
    ax.set_xlabel("speedup over eager (x), latest run per hardware key")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(runs: list[RunResult], out: Path) -> str:
    """merged.md, merged.json and the chart in ``out``; the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = render(runs)
    png = chart(runs, out / "merged-speedup.png")
    if png:
        text += f"\n![speedups]({png.name})\n"
    (out / "merged.md").write_text(text, encoding="utf-8")
    (out / "merged.json").write_text(json.dumps({"runs": [{"file": str(r.path), **r.to_dict()} for r in runs]},
                                                indent=1, default=str) + "\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="whisper-perf merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="results files, or folders holding them")
    parser.add_argument("--out", type=Path, default=Path("results/merged"), help="a new folder for the report")
    args = parser.parse_args(argv)
    runs = load_all(result_files(args.paths))
    require_new_folder(args.out)
    print(write(runs, args.out))
    print(f"Written to {args.out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_command(main))

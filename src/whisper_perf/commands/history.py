"""The trend of speedup and compiled time per model x variant across runs, per hardware key.

    python -m whisper_perf.commands.history --results-dir results/runs --out results/history

Every run leaves one results file (``results/runs/<key>/<run>.json``, never overwritten); this
reads them in time order and writes, into ``--out`` (a new folder), ``history.md`` (one table per
hardware key) and ``history-<key>.png``: speedup with its interval and compiled seconds per
model x variant, run after run, with a vertical line and a label where the torch or
transformers version changed.  Sensitivity-check runs (``--inject-slowdown``) are left out.

Exit status: 0 written; 4 usage error (no runs, for ``--key`` or at all; a results file that
cannot be read; an ``--out`` folder that is not new), with the reason on stderr.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_OK, UsageError
from ..files import require_new_folder
from ..report import md_table
from ..results import MeasurementRecord, RunResult
from ..stats import Interval, interval_text
from . import Parser, run_command
from .merge import load_all, result_files

Line = tuple[str, str, str]  # model, variant, "x<utterances>"


@dataclass(frozen=True)
class Point:
    speedup: Interval | None
    seconds: float  # summed seconds of the variant


@dataclass
class Trend:
    """One hardware key's runs in time order, and per line a point for each run (None: not measured)."""

    runs: list[RunResult] = field(default_factory=list)
    lines: dict[Line, list[Point | None]] = field(default_factory=dict)


def _line(m: MeasurementRecord) -> Line:
    """A line of the trend: model, variant and the number of utterances (another protocol is
    another line, never joined to this one)."""
    return m.model, m.variant, f"x{m.utterances}"


def _point(m: MeasurementRecord | None) -> Point | None:
    return None if m is None else Point(m.summary.speedup, m.summary.seconds.estimate)


def series(runs: list[RunResult]) -> dict[str, Trend]:
    """Hardware key -> its Trend; sensitivity-check runs left out."""
    trends: dict[str, Trend] = {}
    for run in sorted(runs, key=lambda r: r.finished):
        if not run.options.get("inject_slowdown"):
            trends.setdefault(run.hardware_key, Trend()).runs.append(run)
    for trend in trends.values():
        names = list(dict.fromkeys(_line(m) for run in trend.runs for m in run.measurements))
        for name in names:
            trend.lines[name] = [_point(next((m for m in run.measurements if _line(m) == name), None))
                                 for run in trend.runs]
    return trends


def version_changes(runs: list[RunResult]) -> list[tuple[int, str]]:
    """(index of the run, "torch A -> B") where the versions differ from the run before."""
    changes = []
    for i in range(1, len(runs)):
        before, after = runs[i - 1].software, runs[i].software
        parts = [f"{lib} {before[lib]} -> {after[lib]}" for lib in ("torch", "transformers") if before[lib] != after[lib]]
        if parts:
            changes.append((i, ", ".join(parts)))
    return changes


def _cell(point: Point | None) -> str:
    if point is None:
        return "-"
    seconds = f"{point.seconds:.2f} s"
    return f"{interval_text(point.speedup)}, {seconds}" if point.speedup else seconds


def _name(run: RunResult) -> str:
    return run.path.stem if run.path else run.finished


def render(trends: dict[str, Trend]) -> str:
    lines = ["# History", ""]
    for key, trend in sorted(trends.items()):
        changes = dict(version_changes(trend.runs))
        header = ("run", "torch", "transformers", *(" ".join(name) for name in trend.lines))
        rows = [(_name(run) + (f" **({changes[i]})**" if i in changes else ""), run.software["torch"],
                 run.software["transformers"], *(_cell(points[i]) for points in trend.lines.values()))
                for i, run in enumerate(trend.runs)]
        lines += [f"## {key}", "", md_table(header, rows), "", f"![history {key}](history-{key}.png)", ""]
    return "\n".join(lines)


def chart(key: str, trend: Trend, path: Path) -> Path:
    from ..charts import _pyplot, error_bar

    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    x = list(range(len(trend.runs)))
    for n, (name, points) in enumerate(trend.lines.items()):
        color, label = f"C{n % 10}", " ".join(name)
        speed = [(i, p.speedup) for i, p in zip(x, points) if p and p.speedup]
        if speed:
            bars = [error_bar(s) for _, s in speed]
            top.errorbar([i for i, _ in speed], [s.estimate for _, s in speed],
                         yerr=[[b for b, _ in bars], [a for _, a in bars]], fmt="o-", capsize=3, color=color, label=label)
        secs = [(i, p.seconds) for i, p in zip(x, points) if p]
        bottom.plot([i for i, _ in secs], [v for _, v in secs], "o-", color=color, label=label)
    for i, text in version_changes(trend.runs):
        for ax in (top, bottom):
            ax.axvline(i - 0.5, color="grey", ls=":", lw=1)
        top.annotate(text, (i - 0.5, 1), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                     fontsize=7)
    top.set_ylabel("speedup over eager (x)")
    bottom.set_ylabel("summed seconds")
    bottom.set_xticks(x, [_name(run)[:15] for run in trend.runs], rotation=45, ha="right", fontsize=7)
    top.legend(fontsize=7)
    top.set_title(f"History on {key}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m whisper_perf.commands.history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", type=Path, default=Path("results/runs"), help="default: results/runs")
    parser.add_argument("--key", default=None, help="only this hardware key")
    parser.add_argument("--out", type=Path, default=Path("results/history"), help="a new folder for the report")
    args = parser.parse_args(argv)
    runs = load_all(result_files([args.results_dir]), check_protocols=False)
    require_new_folder(args.out)
    trends = series([r for r in runs if args.key in (None, r.hardware_key)])
    if not trends:
        raise UsageError(f"no runs{' for ' + args.key if args.key else ''} in {args.results_dir}")
    args.out.mkdir(parents=True, exist_ok=True)
    for key, trend in trends.items():
        chart(key, trend, args.out / f"history-{key}.png")
    text = render(trends)
    (args.out / "history.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"Written to {args.out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_command(main))

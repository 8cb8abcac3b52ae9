"""The trend of speedup and compiled time per model x variant across runs, per hardware key,
and where a step in it began.

    whisper-perf history --results-dir results/runs --out results/history

Every run leaves one results file (``results/runs/<key>/<run>.json``, never overwritten); this
reads them in time order and writes, into ``--out`` (a new folder), ``history.md`` (one table per
hardware key) and ``history-<key>.png``: speedup with its interval and compiled seconds per
model x variant, run after run, with a vertical line and a label where the torch or
transformers version changed.  Sensitivity-check runs (``--inject-slowdown``) are left out.

Steps: in every line's speedup series and summed-seconds ("time") series, a lasting change of
level is found by changepoints.find_steps (binary segmentation, permutation test at alpha 0.01,
at least two runs on each side) and kept when it is at least the hardware key's tolerance
(speedup, compiled_time) in its file under ``--baselines`` (default ``baselines``; without
one, the defaults of baselines.Tolerances).
Under each key's table, "Steps" names each: line, measure, change with its direction (slower or
faster), the last run before and the first run after with their torch, transformers and commit,
and the suspect: the version change between them (or else the commit change); or says that
there is no step beyond the tolerance.  The chart marks each with a red dashed line.

Exit status: 0 written; 4 usage error (no runs, for ``--key`` or at all; a results file that
cannot be read; an ``--out`` folder that is not new), with the reason on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_OK, UsageError
from ..files import require_new_folder
from ..judge import baselines
from ..judge.baselines import Tolerances
from ..judge.changepoints import RUNS_NEEDED, Step, find_steps
from ..judge.stats import Interval, interval_text, percent_text
from ..record.report import md_table
from ..record.results import MeasurementRecord, RunResult
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
    return m.model, m.variant, f"x{m.utterances}{m.batch_text}"


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


def version_change(before: RunResult, after: RunResult) -> str:
    """"torch A -> B, transformers C -> D" for the versions that differ; "" where none does."""
    parts = [f"{lib} {before.software[lib]} -> {after.software[lib]}" for lib in ("torch", "transformers")
             if before.software[lib] != after.software[lib]]
    return ", ".join(parts)


def version_changes(runs: list[RunResult]) -> list[tuple[int, str]]:
    """(index of the run, "torch A -> B") where the versions differ from the run before."""
    changes = [(i, version_change(runs[i - 1], runs[i])) for i in range(1, len(runs))]
    return [(i, text) for i, text in changes if text]


@dataclass(frozen=True)
class LineStep:
    """A step in one line's series of one measure: "speedup" (higher is faster) or "time"
    (summed seconds, higher is slower)."""

    line: Line
    measure: str
    step: Step

    @property
    def slower(self) -> bool:
        return (self.step.change < 0) == (self.measure == "speedup")


def steps_of(trend: Trend, tolerances: Tolerances) -> list[LineStep]:
    """The steps of every line's speedup and time series, each beyond its tolerance."""
    found = []
    for line, points in trend.lines.items():
        speedups = [p.speedup.estimate if p and p.speedup else None for p in points]
        seconds = [p.seconds if p else None for p in points]
        for measure, values, tolerance in (("speedup", speedups, tolerances.speedup),
                                           ("time", seconds, tolerances.compiled_time)):
            found += [LineStep(line, measure, step) for step in find_steps(values, tolerance)]
    return found


def _cell(point: Point | None) -> str:
    if point is None:
        return "-"
    seconds = f"{point.seconds:.2f} s"
    return f"{interval_text(point.speedup)}, {seconds}" if point.speedup else seconds


def _name(run: RunResult) -> str:
    return run.path.stem if run.path else run.finished


def _versions(run: RunResult) -> str:
    commit = run.software.get("commit")
    return (f"torch {run.software['torch']}, transformers {run.software['transformers']}"
            + (f", commit {commit}" if commit else ""))


def _suspect(before: RunResult, after: RunResult) -> str:
    """What changed between the last run before a step and the first after: the versions, or
    else the suite's commit."""
    versions = version_change(before, after)
    commits = before.software.get("commit"), after.software.get("commit")
    if versions:
        return f"suspect: {versions}"
    if all(commits) and commits[0] != commits[1]:
        return f"suspect: commit {commits[0]} -> {commits[1]}"
    return "no version or commit change at the step"


def _level(measure: str, value: float) -> str:
    return f"{value:.2f}x" if measure == "speedup" else f"{value:.2f} s"


def step_text(runs: list[RunResult], found: LineStep) -> str:
    """One item of the Steps list, e.g. "tiny.en compiled x3, speedup -20.0% (slower), 1.09x ->
    0.87x: last run before r06 (torch ..., transformers ..., commit ...), first run after r07
    (...); suspect: transformers 5.24.0 -> 5.25.0 (p = 0.001)"."""
    step, before, after = found.step, runs[found.step.last_before], runs[found.step.index]
    return (f"{' '.join(found.line)}, {found.measure} {step.change:+.1%} ({'slower' if found.slower else 'faster'}), "
            f"{_level(found.measure, step.before)} -> {_level(found.measure, step.after)}: "
            f"last run before {_name(before)} ({_versions(before)}), first run after {_name(after)} "
            f"({_versions(after)}); {_suspect(before, after)} (p = {step.p_value:.2g})")



def steps_section(trend: Trend, found: list[LineStep], tolerances: Tolerances) -> list[str]:
    """The Steps list under a key's table; without a step, the tolerances it was held to, and
    whether there were runs enough for a step to be told from chance at all."""
    if found:
        items = [f"- {step_text(trend.runs, s)}" for s in found]
    else:
        items = [f"- no step beyond the tolerance (speedup {percent_text(tolerances.speedup)}, "
                 f"time {percent_text(tolerances.compiled_time)})"]
        if len(trend.runs) < RUNS_NEEDED:
            items[0] += f"; too few runs ({len(trend.runs)}) to tell a step from chance: about {RUNS_NEEDED} are needed"
    return ["### Steps", "", *items]


def render(trends: dict[str, Trend], tolerances: dict[str, Tolerances] | None = None,
           found: dict[str, list[LineStep]] | None = None) -> str:
    """history.md: per key its table, its Steps and its chart.  ``tolerances`` (per key, default
    Tolerances()) and the steps ``found`` (per key; found here when not given)."""
    tolerances = {key: (tolerances or {}).get(key, Tolerances()) for key in trends}
    found = found if found is not None else {key: steps_of(trend, tolerances[key]) for key, trend in trends.items()}
    lines = ["# History", ""]
    for key, trend in sorted(trends.items()):
        changes = dict(version_changes(trend.runs))
        header = ("run", "torch", "transformers", *(" ".join(name) for name in trend.lines))
        rows = [(_name(run) + (f" **({changes[i]})**" if i in changes else ""), run.software["torch"],
                 run.software["transformers"], *(_cell(points[i]) for points in trend.lines.values()))
                for i, run in enumerate(trend.runs)]
        lines += [f"## {key}", "", md_table(header, rows), "", *steps_section(trend, found[key], tolerances[key]), "",
                  f"![history {key}](history-{key}.png)", ""]
    return "\n".join(lines)


def _mark_steps(top, bottom, found: Sequence[LineStep]) -> None:
    """A red dashed line between the last run before and the first run after each step, on the
    speedup or the seconds plot, labelled with the line and the change."""
    for s in found:
        ax, x = (top if s.measure == "speedup" else bottom), (s.step.last_before + s.step.index) / 2
        ax.axvline(x, color="red", ls="--", lw=1)
        ax.annotate(f"{s.line[0]} {s.line[1]} {s.step.change:+.0%}", (x, 0.02), xycoords=("data", "axes fraction"),
                    xytext=(2, 0), textcoords="offset points", rotation=90, va="bottom", ha="left", fontsize=7,
                    color="red")


def chart(key: str, trend: Trend, path: Path, found: Sequence[LineStep] = ()) -> Path:
    from ..record.charts import _pyplot, error_bar

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
    _mark_steps(top, bottom, found)
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
    parser = Parser(prog="whisper-perf history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", type=Path, default=Path("results/runs"), help="default: results/runs")
    parser.add_argument("--key", default=None, help="only this hardware key")
    parser.add_argument("--out", type=Path, default=Path("results/history"), help="a new folder for the report")
    parser.add_argument("--baselines", type=Path, default=Path("baselines"),
                        help="the baseline files whose tolerances a step must reach (default: baselines)")
    args = parser.parse_args(argv)
    runs = load_all(result_files([args.results_dir]), check_protocols=False)
    require_new_folder(args.out)
    trends = series([r for r in runs if args.key in (None, r.hardware_key)])
    if not trends:
        raise UsageError(f"no runs{' for ' + args.key if args.key else ''} in {args.results_dir}")
    args.out.mkdir(parents=True, exist_ok=True)
    tolerances = {key: baselines.tolerances_for(args.baselines, key) for key in trends}
    found = {key: steps_of(trend, tolerances[key]) for key, trend in trends.items()}
    for key, trend in trends.items():
        chart(key, trend, args.out / f"history-{key}.png", found[key])
    text = render(trends, tolerances, found)
    (args.out / "history.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"Written to {args.out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_command(main))

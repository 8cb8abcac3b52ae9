"""PNG charts of a run, drawn with matplotlib from its results data.

* speedup: measured speedup with its confidence interval per model x variant, beside the
  baseline's speedup and its tolerance band;
* phases: per-phase latency (encoder, first token, per-token decode) of each build.
"""

from __future__ import annotations

from pathlib import Path

from ..judge.stats import Interval
from .results import RunResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def error_bar(interval: Interval) -> tuple[float, float]:
    """(below, above) the estimate for an error bar of an interval; none for one round (NaN
    bounds), never negative (a bootstrap interval can sit beside its estimate)."""
    if interval.single_round:
        return 0.0, 0.0
    return max(0.0, interval.estimate - interval.low), max(0.0, interval.high - interval.estimate)


def speedup_chart(run: RunResult, baselines: dict, path: Path) -> Path | None:
    """``baselines``: (model, variant) -> (speedup, tolerance) of the entry each was judged against."""
    rows = [m for m in run.measurements if m.summary.speedup]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(rows) + 1.4))
    for y, m in enumerate(rows):
        s = m.summary.speedup
        below, above = error_bar(s)
        ax.errorbar(s.estimate, y, xerr=[[below], [above]], fmt="o", color="C0",
                    capsize=4, label="measured (95% CI)" if y == 0 else None)
        base = baselines.get(m.key)
        if base:
            speedup, tolerance = base
            ax.plot([speedup], [y], "|", color="C3", markersize=18, label="baseline" if y == 0 else None)
            ax.fill_betweenx([y - 0.3, y + 0.3], speedup * (1 - tolerance), speedup * (1 + tolerance), color="C3",
                             alpha=0.15, label="tolerance" if y == 0 else None)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(len(rows)), [f"{m.model} {m.variant}" for m in rows])
    ax.set_xlabel("speedup over eager (x)")
    ax.set_title(f"Compiled speedup on {run.hardware_key}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def phases_chart(run: RunResult, path: Path) -> Path | None:
    builds = []
    for m in run.measurements:
        d = m.diagnostics
        if d.variant:
            builds.append((m.variant, d.variant["phases"]))
            if d.reference:
                builds.append((f"{m.reference} (ref. of {m.variant})", d.reference["phases"]))
    if not builds:
        return None
    plt = _pyplot()
    phases = [("encoder_ms", "encoder"), ("first_token_ms", "first token"), ("per_token_ms", "per token")]
    fig, axes = plt.subplots(1, len(phases), figsize=(11, 0.5 * len(builds) + 1.6), sharey=True)
    for ax, (key, title) in zip(axes, phases):
        values = [b[1].get(key) or 0.0 for b in builds]
        ax.barh(range(len(builds)), values, color=["C0" if "(ref." not in b[0] else "C7" for b in builds])
        ax.set_title(f"{title} (ms)")
    axes[0].set_yticks(range(len(builds)), [b[0] for b in builds])
    fig.suptitle(f"Per-phase latency on {run.hardware_key}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

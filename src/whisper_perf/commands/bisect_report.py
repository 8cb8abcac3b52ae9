"""The bisect's report: its conclusion in a sentence, ``bisect.md`` (every probe with its change,
what each overlay installed beside the package, the folders to file upstream, the command that
checks the pair) and ``bisect.png`` (each probe's change against the good end, by release)."""

from __future__ import annotations

from pathlib import Path

from ..judge.stats import Interval
from ..record.report import md_table
from . import comparison
from .bisection import Outcome

# criterion -> (key of the change in comparison.change, what it is, tolerance field, higher is better)
MEASURES = dict(zip(("speedup", "time", "eager-time"), comparison.JUDGED))
CRITERIA = [*MEASURES, "wer", "kernels", "failure"]


def conclusion(outcome: Outcome, package: str, newer_is_bad: bool) -> str:
    if outcome.verdict == "found":
        if newer_is_bad:
            return f"first bad version: **{package} {outcome.first_bad}** (last good: {outcome.last_good})"
        return f"fixed in **{package} {outcome.last_good}** (the newest bad version: {outcome.first_bad})"
    if outcome.verdict == "no regression":
        return f"no regression: the bad end {package} {outcome.versions[-1]} measured good against the good end"
    if outcome.candidates and newer_is_bad:
        return (f"undecided: the first bad version is one of {', '.join(outcome.candidates)} (last good: "
                f"{outcome.last_good}; the versions before {outcome.first_bad} could not be decided)")
    if outcome.candidates:
        fixed_in = [outcome.last_good, *outcome.candidates[:-1]]  # newest first: from the good end
        return (f"undecided: fixed in one of {', '.join(fixed_in)} (the newest bad version: {outcome.first_bad}; "
                f"{', '.join(outcome.candidates[:-1])} could not be decided)")
    end = outcome.probes[-1]
    return f"undecided: {end.version} measured {end.state.value} ({end.detail})"


def criterion_text(criterion: str, tolerance: float) -> str:
    if criterion == "failure":
        return "failure (the variant fails to build or run)"
    if criterion == "wer":
        return f"WER (tolerance {100 * tolerance:.1f} points)"
    if criterion == "kernels":
        return "kernels (any change in the fingerprint of the code run)"
    return f"{criterion} (tolerance {tolerance:.1%})"


def _grouped_beside(beside: dict[str, list[str]], package: str) -> dict[str, list[str]]:
    """What the overlays installed besides the package itself -> the versions that installed it."""
    groups: dict[str, list[str]] = {}
    for version, names in beside.items():
        others = [n for n in names if n.split()[0].lower().replace("_", "-") != package.lower()]
        groups.setdefault(", ".join(others) or "nothing else", []).append(version)
    return groups


def render(report: dict) -> str:
    outcome = report["outcome"]
    rows = [[p["version"], p["state"], str(p["repeats"]),
             f"{p['seconds'] / 60:.1f}", p["detail"]] for p in sorted(outcome["probes"], key=lambda p: report["order"].index(p["version"]))]
    lines = [f"# Bisect {report['package']} on {report['hardware_key']}", "",
             report["conclusion"], "",
             f"- range: {report['good']} (good) .. {report['bad']} (bad): {len(report['order'])} releases "
             f"({report['listed_from']})",
             f"- criterion: {criterion_text(report['criterion'], report['tolerance'])} of `{report['variant']}`; "
             f"held fixed: {report['base']}",
             f"- {len(outcome['probes'])} probes in {report['minutes']:.0f} min; each probe ran the suite "
             f"(`{' '.join(report['pytest_args'])}`) in the version's environment"
             + ("" if report["criterion"] in ("failure", "kernels") else
                " beside the good end's, alternating the order; a probe is looked at after each repeat, each "
                f"interval at {report['confidence']:.1%} so that all of a probe's looks hold at once with 95%"), ""]
    lines += [md_table(["version", "state", "repeats", "min", "what was measured (interval: see above)"], [
        [f"**{c}**" if i == 0 else c for i, c in enumerate(r)] if r[1] == "bad" else r for r in rows]), ""]
    if report.get("beside"):
        lines += ["What each version's environment installed beside it (its own requirements; the rest is the "
                  "current environment's):", ""]
        lines += [f"- {', '.join(versions)}: {others}" for others, versions in
                  _grouped_beside(report["beside"], report["package"]).items()] + [""]
    if report.get("bug_reports"):
        lines += ["Filing it upstream: the first bad version's runs wrote these folders (`repro.py`, `env.txt`, "
                  "`report.md`):", "", *[f"- `{path}`" for path in report["bug_reports"]], ""]
    if report.get("reproduce"):
        lines += ["Check the pair independently (full environments, several repeats):", "",
                  f"    {report['reproduce']}", ""]
    return "\n".join(lines + ["![bisect](bisect.png)", ""])


def chart(report: dict, path: Path) -> Path | None:
    from ..record.charts import _pyplot, error_bar

    probes = [p for p in report["outcome"]["probes"] if p["change"]]
    if not probes:
        return None
    plt = _pyplot()
    order = report["order"]
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.35 * len(order))), 4))
    colors = {"good": "C2", "bad": "C3", "inconclusive": "C1"}
    for p in probes:
        interval = Interval.from_dict(p["change"])
        below, above = error_bar(interval)
        ax.errorbar(order.index(p["version"]), interval.estimate, yerr=[[below], [above]], fmt="o", capsize=3,
                    color=colors.get(p["state"], "C7"))
    for p in report["outcome"]["probes"]:
        if p["state"] == "skipped":
            ax.plot(order.index(p["version"]), 1.0, "x", color="C7")
    _, _, _, higher_is_better = MEASURES[report["criterion"]]
    ax.plot(0, 1.0, "s", color="C2")  # the good end: what every change is measured against
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhline(1 - report["tolerance"] if higher_is_better else 1 + report["tolerance"], color="C3", ls="--", lw=0.8)
    outcome = report["outcome"]
    if outcome["verdict"] == "found":
        ax.axvline((order.index(outcome["last_good"]) + order.index(outcome["first_bad"])) / 2, color="C3", lw=1)
    probed = sorted({order.index(p["version"]) for p in report["outcome"]["probes"]} | {0, len(order) - 1})
    ax.set_xticks(probed, [order[i] for i in probed], rotation=90, fontsize=7)  # the releases between: unlabelled
    ax.set_xlim(-1, len(order))
    ax.set_ylabel(f"{report['criterion']} against {report['package']} {report['good']} (x)")
    ax.set_title(f"Bisect {report['package']}: green good, red bad, orange inconclusive, x skipped", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""The trend of speedup and compiled time per model x variant across runs, per hardware key.

    python -m whisper_perf.history --results-dir results/runs --out results/history

Every run leaves one results file (``results/runs/<key>/<run>.json``, never overwritten); this
reads them in time order and writes, into ``--out`` (a new folder), ``history.md`` (one table per
hardware key) and ``history-<key>.png``: speedup with its interval and compiled seconds per
model x variant, run after run, with a vertical line and a label where the torch or
transformers version changed.  Sensitivity-check runs (``--inject-slowdown``) are left out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UsageError
from .merge import load_all, result_files
from .results import require_new_folder


def _line(m: dict) -> tuple:
    """A line of the trend: model, variant and the number of utterances (another protocol is
    another line, never joined to this one)."""
    return m["model"], m["variant"], f"x{m['utterances']}"


def series(runs: list[tuple[Path, dict]]) -> dict:
    """key -> {"runs": [(path, data)...] in time order, "lines": {(model, variant): [point or None]}}."""
    out: dict = {}
    for path, data in sorted(runs, key=lambda item: item[1]["finished"]):
        if data["options"].get("inject_slowdown"):
            continue
        out.setdefault(data["hardware"]["key"], {"runs": [], "lines": {}})["runs"].append((path, data))
    for key, entry in out.items():
        names = []
        for _, data in entry["runs"]:
            names += [_line(m) for m in data["measurements"] if _line(m) not in names]
        for name in names:
            points = []
            for _, data in entry["runs"]:
                m = next((m for m in data["measurements"] if _line(m) == name), None)
                points.append(None if m is None else {"speedup": m["summary"].get("speedup"),
                                                      "seconds": m["summary"]["seconds"]["estimate"]})
            entry["lines"][name] = points
    return out


def version_changes(runs: list[tuple[Path, dict]]) -> list[tuple[int, str]]:
    """(index of the run, "torch A -> B") where the versions differ from the run before."""
    changes = []
    for i in range(1, len(runs)):
        before, after = runs[i - 1][1]["software"], runs[i][1]["software"]
        parts = [f"{lib} {before[lib]} -> {after[lib]}" for lib in ("torch", "transformers") if before[lib] != after[lib]]
        if parts:
            changes.append((i, ", ".join(parts)))
    return changes


def render(trends: dict) -> str:
    lines = ["# History", ""]
    for key, entry in sorted(trends.items()):
        runs = entry["runs"]
        changes = dict(version_changes(runs))
        lines += [f"## {key}", "", "| run | torch | transformers | " + " | ".join(
            " ".join(name) for name in entry["lines"]) + " |", "|---|---|---|" + "---|" * len(entry["lines"])]
        for i, (path, data) in enumerate(runs):
            cells = []
            for points in entry["lines"].values():
                p = points[i]
                if p is None:
                    cells.append("-")
                elif p["speedup"]:
                    cells.append(f"{p['speedup']['estimate']:.3f}x, {p['seconds']:.2f} s")
                else:
                    cells.append(f"{p['seconds']:.2f} s")
            mark = f" **({changes[i]})**" if i in changes else ""
            lines.append(f"| {path.stem}{mark} | {data['software']['torch']} | {data['software']['transformers']} | "
                         + " | ".join(cells) + " |")
        lines += ["", f"![history {key}](history-{key}.png)", ""]
    return "\n".join(lines)


def chart(key: str, entry: dict, path: Path) -> Path:
    from .charts import _pyplot, error_bar

    plt = _pyplot()
    runs = entry["runs"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    x = list(range(len(runs)))
    for n, (name, points) in enumerate(entry["lines"].items()):
        color = f"C{n % 10}"
        speed = [(i, p["speedup"]) for i, p in zip(x, points) if p and p["speedup"]]
        if speed:
            est = [s["estimate"] for _, s in speed]
            bars = [error_bar(s) for _, s in speed]
            top.errorbar([i for i, _ in speed], est, yerr=[[b for b, _ in bars], [a for _, a in bars]], fmt="o-", capsize=3, color=color,
                         label=" ".join(name))
        secs = [(i, p["seconds"]) for i, p in zip(x, points) if p]
        bottom.plot([i for i, _ in secs], [v for _, v in secs], "o-", color=color, label=" ".join(name))
    for i, text in version_changes(runs):
        for ax in (top, bottom):
            ax.axvline(i - 0.5, color="grey", ls=":", lw=1)
        top.annotate(text, (i - 0.5, 1), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                     fontsize=7)
    top.set_ylabel("speedup over eager (x)")
    bottom.set_ylabel("summed seconds")
    bottom.set_xticks(x, [p.stem[:15] for p, _ in runs], rotation=45, ha="right", fontsize=7)
    top.legend(fontsize=7)
    top.set_title(f"History on {key}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whisper_perf.history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", type=Path, default=Path("results/runs"), help="default: results/runs")
    parser.add_argument("--key", default=None, help="only this hardware key")
    parser.add_argument("--out", type=Path, default=Path("results/history"), help="a new folder for the report")
    args = parser.parse_args(argv)
    try:
        runs = load_all(result_files([args.results_dir]), check_protocols=False)
        require_new_folder(args.out)
    except UsageError as exc:
        print(f"UsageError: {exc}", file=sys.stderr)
        return 4
    trends = series([r for r in runs if args.key in (None, r[1]["hardware"]["key"])])
    if not trends:
        print(f"UsageError: no runs{' for ' + args.key if args.key else ''} in {args.results_dir}", file=sys.stderr)
        return 4
    args.out.mkdir(parents=True, exist_ok=True)
    for key, entry in trends.items():
        chart(key, entry, args.out / f"history-{key}.png")
    text = render(trends)
    (args.out / "history.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"Written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

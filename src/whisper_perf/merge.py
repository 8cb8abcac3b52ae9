"""Merge results from several machines and runs into one report.

    python -m whisper_perf.merge results/runs artifacts/l4/runs artifacts/h100/runs --out results/merged

Takes results files (``results/runs/<key>/<run>.json``) or folders holding them, and writes
``merged.md`` (a table per hardware key: each model x variant of each run, with its speedup,
times, WER and verdicts), ``merged.json`` and ``merged-speedup.png`` (every hardware key's
speedups in one chart) into ``--out`` (a new folder; never over an earlier merge).

It refuses, naming the files, to mix what cannot be compared: results of another schema
version, and, within one hardware key, two runs that measured the same model x variant with
different protocols (audio set, number of utterances, token budget, fixed work, dtype).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UsageError
from .results import require_new_folder
from .stats import interval_text

PROTOCOL_FIELDS = ("audio_set", "utterances", "max_new_tokens", "fixed_work", "dtype")


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


def _protocol(m: dict) -> dict:
    setup = m.get("setup", {})
    return {"audio_set": m.get("audio_set"), "utterances": m.get("utterances"),
            "max_new_tokens": setup.get("max_new_tokens"), "fixed_work": setup.get("fixed_work"),
            "dtype": setup.get("dtype")}


def load_all(files: list[Path], check_protocols: bool = True) -> list[tuple[Path, dict]]:
    """Read and check every file; raise UsageError naming the files that cannot be mixed."""
    from .results import SCHEMA_VERSION, load_run

    runs = []
    for path in files:
        try:
            runs.append((path, load_run(path)))
        except UsageError as exc:
            raise UsageError(f"cannot merge: {exc} (this suite reads results schema_version {SCHEMA_VERSION}; "
                             "merge files of one version)") from exc
    seen: dict = {}
    for path, data in runs if check_protocols else []:
        key = data["hardware"]["key"]
        for m in data["measurements"]:
            ident = (key, m["model"], m["variant"].removesuffix("+slowed"))
            protocol = _protocol(m)
            if ident in seen and seen[ident][1] != protocol:
                other, theirs = seen[ident]
                diff = ", ".join(f"{k} {theirs[k]} vs {protocol[k]}" for k in PROTOCOL_FIELDS if theirs[k] != protocol[k])
                raise UsageError(f"cannot merge: {other} and {path} measured {ident[1]}/{ident[2]} on {key} with "
                                 f"different protocols ({diff}); merge runs of one protocol")
            seen.setdefault(ident, (path, protocol))
    return runs


def render(runs: list[tuple[Path, dict]]) -> str:
    by_key: dict[str, list] = {}
    for path, data in runs:
        by_key.setdefault(data["hardware"]["key"], []).append((path, data))
    lines = ["# Merged results", "", f"{len(runs)} runs on {len(by_key)} hardware key(s).", ""]
    for key in sorted(by_key):
        items = sorted(by_key[key], key=lambda item: item[1]["finished"])
        device = items[-1][1]["hardware"]["device_name"]
        lines += [f"## {key} ({device})", "",
                  "| run | torch | transformers | model | variant | speedup [95% CI] | variant s | eager s | WER | "
                  "verdicts |", "|---|---|---|---|---|---|---|---|---|---|"]
        for path, data in items:
            for m in data["measurements"]:
                s = m["summary"]
                verdicts = [v for v in data["verdicts"] if (v["model"], v["variant"]) == (m["model"], m["variant"])]
                bad = [v["check"] for v in verdicts if v["outcome"] in ("regression", "anomaly gone")]
                shown = f"**REGRESSION: {', '.join(bad)}**" if bad else (
                    f"{len(verdicts)} passed or skipped" if verdicts else "not judged")
                lines.append(f"| {path.stem} | {data['software']['torch']} | {data['software']['transformers']} | "
                             f"{m['model']} | {m['variant']} | {interval_text(s.get('speedup'))} | {s['seconds']['estimate']:.2f} | "
                             f"{(s.get('reference_seconds') or {}).get('estimate', float('nan')):.2f} | "
                             f"{100 * s['wer']:.1f}% | {shown} |")
            for f in data.get("failures", []):
                lines.append(f"| {path.stem} | {data['software']['torch']} | {data['software']['transformers']} | "
                             f"{f['model']} | {f['variant']} | **failed ({f['stage']}): {f['error']}** | - | - | - | - |")
        lines.append("")
    return "\n".join(lines)


def chart(runs: list[tuple[Path, dict]], path: Path) -> Path | None:
    """Every hardware key's latest speedup per model x variant, one chart."""
    latest: dict = {}
    for _, data in sorted(runs, key=lambda item: item[1]["finished"]):
        for m in data["measurements"]:
            if m["summary"].get("speedup"):
                latest[(data["hardware"]["key"], m["model"], m["variant"])] = m["summary"]["speedup"]
    if not latest:
        return None
    from .charts import _pyplot, error_bar

    plt = _pyplot()
    labels = sorted(latest)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.4))
    for y, label in enumerate(labels):
        s = latest[label]
        below, above = error_bar(s)
        ax.errorbar(s["estimate"], y, xerr=[[below], [above]], fmt="o", capsize=3,
                    color=f"C{sorted({k for k, _, _ in labels}).index(label[0]) % 10}")
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(len(labels)), [" ".join(label) for label in labels], fontsize=8)
    ax.set_xlabel("speedup over eager (x), latest run per hardware key")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whisper_perf.merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="results files, or folders holding them")
    parser.add_argument("--out", type=Path, default=Path("results/merged"), help="a new folder for the report")
    args = parser.parse_args(argv)
    try:
        runs = load_all(result_files(args.paths))
        require_new_folder(args.out)
    except UsageError as exc:
        print(f"UsageError: {exc}", file=sys.stderr)
        return 4
    args.out.mkdir(parents=True, exist_ok=True)
    text = render(runs)
    png = chart(runs, args.out / "merged-speedup.png")
    if png:
        text += f"\n![speedups]({png.name})\n"
    (args.out / "merged.md").write_text(text, encoding="utf-8")
    (args.out / "merged.json").write_text(json.dumps({"runs": [{"file": str(p), **d} for p, d in runs]}, indent=1,
                                                     default=str) + "\n", encoding="utf-8")
    print(text)
    print(f"Written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

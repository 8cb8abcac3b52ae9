"""What a run tells its reader: the measurement table, then the verdicts."""

from __future__ import annotations

import math

from .stats import interval_text
from .summary import Summary
from .timing import Measurement


def _fmt(value, spec: str, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec) + suffix


def _interval(interval) -> str:
    if interval is None or math.isnan(interval.low):
        return "-"
    return f"[{interval.low:.3f}, {interval.high:.3f}]"


def _table(header: tuple, rows: list[tuple]) -> str:
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def measurement_table(items: list[tuple[Measurement, Summary]]) -> str:
    header = ("model", "variant", "vs", "audio", "rounds", "eager s", "variant s", "speedup", "95% CI", "RTFx",
              "WER eager", "WER", "same ids", "1st call s")
    rows = []
    for m, s in items:
        ref = s.reference_seconds.estimate if s.reference_seconds else None
        rounds = f"{s.rounds_used}" + (f" (+{s.busy_rounds} busy)" if s.busy_rounds else "")
        rows.append((m.model, m.variant, m.reference or "-", f"{m.audio_set} x{len(m.reference_texts)}", rounds,
                     _fmt(ref, ".2f"),
                     _fmt(s.seconds.estimate, ".2f"), _fmt(s.speedup and s.speedup.estimate, ".3f", "x"),
                     _interval(s.speedup), _fmt(s.rtfx, ".1f"),
                     _fmt(None if s.reference_wer is None else 100 * s.reference_wer, ".1f"),
                     _fmt(100 * s.wer, ".1f"), _fmt(None if s.exact_match is None else 100 * s.exact_match, ".0f", "%"),
                     _fmt(m.first_call_seconds, ".1f")))
    return _table(header, rows)


def verdict_table(verdicts: list[tuple[str, str, object]]) -> str:
    """(model, variant, verdicts.Verdict) rows; "detects" is the smallest slowdown the check could
    have flagged in this run (tolerance + measured noise)."""
    return _table(("model", "variant", "check", "verdict", "detects", "detail"),
                  [(model, variant, v.check, v.outcome.value.upper(),
                    _fmt(None if v.detectable is None else 100 * v.detectable, ".0f", "%"), v.message)
                   for model, variant, v in verdicts])


# ---- Markdown: the report a person reads (CI step summary, results/runs/<key>/<run>.md) ----

def _md_table(header: tuple, rows: list[tuple]) -> str:
    clean = lambda cell: str(cell).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(value) -> str:
    return _fmt(value, ".1f")


def _mib(memory: dict | None) -> str:
    if not memory or memory.get("bytes") is None:
        return "-"
    return f"{memory['bytes'] / 2**20:,.0f}"


def markdown_report(data: dict, charts: dict[str, str] | None = None) -> str:
    """The run's report from its results data (results.write_run's content): verdicts first,
    then timings, compile health, compile latency, peak memory, per-phase latency and roofline."""
    hw, sw, options = data["hardware"], data["software"], data["options"]
    failed = [v for v in data["verdicts"] if v["outcome"] in ("regression", "anomaly gone")]
    failed += data.get("failures", [])
    head = "REGRESSION" if failed else "no regression" if data["verdicts"] else "nothing judged"
    lines = [f"# Whisper torch.compile: {head} on {hw['key']}", "",
             f"{hw['device_name']}; torch {sw['torch']}, transformers {sw['transformers']}, Python {sw['python']}"
             + (f", CUDA {sw['cuda']}" if sw.get("cuda") else "") + (f"; commit {sw['commit']}" if sw.get("commit") else "")
             + f"; profile {options['profile']}, {options['rounds']} rounds, exit status {data['exit_status']}; "
             f"finished {data['finished']}.", ""]
    lines += ["## Verdicts", ""]
    if data["verdicts"]:
        lines.append(_md_table(("model", "variant", "check", "verdict", "detects", "detail"), [
            (v["model"], v["variant"], v["check"],
             f"**{v['outcome'].upper()}**" if v["outcome"] in ("regression", "anomaly gone") else v["outcome"].upper(),
             _fmt(None if v.get("detectable") is None else 100 * v["detectable"], ".0f", "%"), v["message"])
            for v in data["verdicts"]]))
    else:
        lines.append("No verdicts (recording, or no baseline for this hardware).")
    if data.get("failures"):
        lines += ["", "## Variants that failed", "",
                  _md_table(("model", "variant", "stage", "error"),
                            [(f["model"], f["variant"], f["stage"], f"**{f['error']}**") for f in data["failures"]])]
    measurements = data["measurements"]
    lines += ["", "## Timings (summed generate() seconds over the audio set)", "",
              _md_table(("model", "variant", "vs", "utterances", "rounds", "eager s", "variant s", "speedup [95% CI]",
                         "RTFx", "WER", "busy rounds", "stalled calls", "machine probe ms"), [
                  (m["model"], m["variant"], m["reference"] or "-", m["utterances"], m["summary"]["rounds_used"],
                   _fmt((m["summary"].get("reference_seconds") or {}).get("estimate"), ".2f"),
                   _fmt(m["summary"]["seconds"]["estimate"], ".2f"), interval_text(m["summary"].get("speedup")),
                   _fmt(m["summary"]["rtfx"], ".1f"), _fmt(100 * m["summary"]["wer"], ".1f", "%"),
                   m["summary"]["busy_rounds"], m["summary"].get("stalled_calls", 0),
                   _fmt(m["summary"].get("machine_probe_ms"), ".1f")) for m in measurements])]
    compiled = [m for m in measurements if (m.get("diagnostics") or {}).get("warmup_compile")]
    if compiled:
        rows = []
        for m in compiled:
            d = m["diagnostics"]
            w, t = d["warmup_compile"], d["timed_compile"] or {}
            skips = sorted(set(w["cudagraph_skip_reasons"]) | set(t.get("cudagraph_skip_reasons", [])))
            rows.append((m["model"], m["variant"], w["graphs"], w["graph_breaks"] + t.get("graph_breaks", 0),
                         w["recompiles"], t.get("recompiles", 0), "; ".join(skips) or "none",
                         "; ".join(t.get("recompile_reasons", [])) or "-"))
        lines += ["", "## Compile health", "",
                  "Graphs compiled and recompiles during warm-up; recompiles while timed must be 0.", "",
                  _md_table(("model", "variant", "graphs", "graph breaks", "recompiles (warm-up)",
                             "recompiles (timed)", "CUDA graphs skipped", "failed guard (timed)"), rows)]
        rows = []
        for m in compiled:
            d = m["diagnostics"]
            cache = d["warmup_compile"].get("fx_graph_cache") or {}
            cold = d.get("cold_compile") or {}
            rows.append((m["model"], m["variant"], _fmt(d.get("first_call_seconds"), ".1f"),
                         _fmt(d["warmup_compile"].get("compile_seconds"), ".1f"),
                         ", ".join(f"{k} {v}" for k, v in sorted(cache.items())) or "-",
                         _fmt(cold.get("cold_seconds"), ".1f"), _fmt(cold.get("warm_seconds"), ".1f"),
                         cold.get("source", "not measured")))
        lines += ["", "## Compile latency", "",
                  "First compiled call in this run (compile with this machine's caches + one generate()), "
                  "dynamo's compile time in warm-up, FX graph cache use; cold/warm: first call in a fresh process "
                  "with an empty compile cache, then again with the cache it filled.", "",
                  _md_table(("model", "variant", "first call s", "compile s", "FX graph cache", "cold s", "warm s",
                             "cold/warm"), rows)]
    diagnosed = [m for m in measurements if (m.get("diagnostics") or {}).get("variant")]
    if diagnosed:
        rows, phase_rows = [], []
        for m in diagnosed:
            d = m["diagnostics"]
            ref = d.get("reference") or {}
            rows.append((m["model"], m["variant"], _mib(d["variant"].get("peak_memory")),
                         _mib(ref.get("peak_memory")), (d["variant"].get("peak_memory") or {}).get("kind", "-")))
            for build, b in (("variant", d["variant"]), (m["reference"] or "", ref)):
                if not b:
                    continue
                p, r = b["phases"], b.get("roofline") or {}
                phase_rows.append((m["model"], m["variant"] if build == "variant" else f"{build} (reference)",
                                   _ms(p["encoder_ms"]), _ms(p["first_token_ms"]), _fmt(p["per_token_ms"], ".2f"),
                                   _fmt(p["steps"], ".0f"), _fmt(r.get("bytes_per_step") and r["bytes_per_step"] / 1e6, ".1f"),
                                   _fmt(r.get("floor_ms"), ".2f"), _fmt(r.get("percent_of_roofline"), ".0f", "%")))
        bw = next((m["diagnostics"].get("bandwidth") for m in diagnosed if m["diagnostics"].get("bandwidth")), None)
        lines += ["", "## Peak memory (MiB)", "",
                  _md_table(("model", "variant", "variant", "eager reference", "what"), rows),
                  "", "## Per-phase latency and roofline", "",
                  "Diagnostic calls after the timed rounds. Per token: median interval between decoder steps. "
                  "Floor: bytes one decode step must read / memory bandwidth"
                  + (f" ({bw['gbps']:.0f} GB/s, {bw['source']})" if bw else "")
                  + "; % of roofline = floor / per-token time (see README, \"Roofline\").", "",
                  _md_table(("model", "build", "encoder ms", "first token ms", "per token ms", "steps",
                             "MB per step", "floor ms", "% of roofline"), phase_rows)]
    if charts:
        lines += ["", "## Charts", ""] + [f"![{name}]({path})" for name, path in charts.items()]
    return "\n".join(lines) + "\n"


def _write_new(path, text: str) -> None:
    with open(path, "x", encoding="utf-8") as handle:  # "x": never replaces an earlier run's file
        handle.write(text)


def write_reports(results_path, data: dict, baselines: dict) -> dict:
    """Beside the run's results file: ``<run>.md`` and ``<run>-speedup.png``/``-phases.png``;
    the Markdown is also appended to ``$GITHUB_STEP_SUMMARY`` when set.  Returns name -> path."""
    import os
    from pathlib import Path

    results_path = Path(results_path)
    stem = results_path.with_suffix("")
    written: dict = {}
    charts: dict = {}
    try:
        from .charts import phases_chart, speedup_chart
    except ImportError:  # matplotlib missing: the text report still says everything
        speedup_chart = phases_chart = None
    if speedup_chart is not None:
        for name, draw in (("speedup", lambda p: speedup_chart(data, baselines, p)),
                           ("phases", lambda p: phases_chart(data, p))):
            path = Path(f"{stem}-{name}.png")
            try:
                if not path.exists() and draw(path):
                    charts[name] = path.name
                    written[name] = path
            except Exception as exc:  # a chart is never worth a failed run: say so and go on
                import warnings

                warnings.warn(f"whisper_perf: could not draw {path.name}: {type(exc).__name__}: {exc}")
    markdown = markdown_report(data, charts)
    path = Path(f"{stem}.md")
    _write_new(path, markdown)
    written["markdown"] = path
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown_report(data) + "\n")
        written["github_step_summary"] = Path(summary)
    return written


def diagnostics_table(measurements: list[dict]) -> str:
    """One terminal row per model x variant from the results records: compile health, compile
    latency, peak memory, phases and roofline (the Markdown report has the details)."""
    rows = []
    for m in measurements:
        d = m.get("diagnostics") or {}
        w, t, cold = d.get("warmup_compile") or {}, d.get("timed_compile") or {}, d.get("cold_compile") or {}
        mine = d.get("variant") or {}
        p, r = mine.get("phases") or {}, mine.get("roofline") or {}
        if not (w or mine):
            continue
        rows.append((m["model"], m["variant"], _fmt(w.get("graphs"), "d"),
                     _fmt(w.get("graph_breaks", 0) + t.get("graph_breaks", 0) if w else None, "d"),
                     _fmt(t.get("recompiles") if t else None, "d"), _fmt(cold.get("cold_seconds"), ".1f"),
                     _fmt(cold.get("warm_seconds"), ".1f"), _mib(mine.get("peak_memory")),
                     _fmt(p.get("encoder_ms"), ".1f"), _fmt(p.get("first_token_ms"), ".1f"),
                     _fmt(p.get("per_token_ms"), ".2f"), _fmt(r.get("floor_ms"), ".2f"),
                     _fmt(r.get("percent_of_roofline"), ".0f", "%")))
    return _table(("model", "variant", "graphs", "breaks", "recompiles timed", "cold s", "warm s", "peak MiB",
                   "encoder ms", "1st token ms", "per token ms", "floor ms", "roofline"), rows) if rows else ""

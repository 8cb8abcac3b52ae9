"""What a run tells its reader: the measurement table, then the verdicts."""

from __future__ import annotations

import math

from ..build.compile_health import CompileTotals
from ..files import write_new
from ..inputs.architectures import is_random
from ..judge.device_time import device_speedup_interval, device_time_interval
from ..judge.stats import interval_text
from ..judge.verdicts import Outcome
from .results import MeasurementRecord, RunResult


def _fmt(value, spec: str, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec) + suffix


def _wer(model: str, wer: float | None, suffix: str = "") -> str:
    """A WER cell: no number for random weights, whose transcripts mean nothing (architectures.is_random)."""
    if wer is not None and is_random(model):
        return "n/a (random weights)"
    return _fmt(None if wer is None else 100 * wer, ".1f", suffix)


def _table(header: tuple, rows: list[tuple]) -> str:
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def measurement_table(measurements: list[MeasurementRecord]) -> str:
    """One terminal row per model x variant of a run (results.RunResult.measurements): the timings."""
    header = ("model", "variant", "vs", "audio", "rounds", "eager s", "variant s", "speedup [95% CI]", "RTFx",
              "WER eager", "WER", "same ids", "1st call s")
    rows = []
    for m in measurements:
        s = m.summary
        ref = s.reference_seconds.estimate if s.reference_seconds else None
        rounds = f"{s.rounds_used}" + (f" (+{s.busy_rounds} busy)" if s.busy_rounds else "")
        rows.append((m.model, m.variant, m.reference or "-", f"{m.audio_set} x{m.utterances}" + m.batch_text,
                     rounds, _fmt(ref, ".2f"),
                     _fmt(s.seconds.estimate, ".2f"), interval_text(s.speedup), _fmt(s.rtfx, ".1f"),
                     _wer(m.model, s.reference_wer), _wer(m.model, s.wer),
                     _fmt(None if s.exact_match is None else 100 * s.exact_match, ".0f", "%"),
                     _fmt(m.first_call_seconds, ".1f")))
    return _table(header, rows)


def verdict_table(verdicts: list[tuple[str, str, object]]) -> str:
    """(model, variant, verdicts.Verdict) rows; "detects" is the smallest slowdown the check would
    have flagged in this run 95% of the time (tolerance + measured noise; stats.DETECTION_POWER)."""
    return _table(("model", "variant", "check", "verdict", "detects", "detail"),
                  [(model, variant, v.check, v.outcome.value.upper(), _detects(v), v.message)
                   for model, variant, v in verdicts])


# ---- Markdown: the report a person reads (CI step summary, results/runs/<key>/<run>.md) ----

def md_table(header: tuple, rows: list[tuple]) -> str:
    """A Markdown table (every report of the suite builds its tables here); cells are escaped."""
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


def markdown_report(run: RunResult, charts: dict[str, str] | None = None) -> str:
    """The run's report (results.RunResult): verdicts first, then timings, compile health, compile
    latency, peak memory, per-phase latency and roofline."""
    hw, sw, options = run.hardware, run.software, run.options
    lines = [f"# Whisper torch.compile on {run.hardware_key}: {run.headline()}", "",
             f"{hw['device_name']}; torch {sw['torch']}, transformers {sw['transformers']}, Python {sw['python']}"
             + (f", CUDA {sw['cuda']}" if sw.get("cuda") else "") + (f"; commit {sw['commit']}" if sw.get("commit") else "")
             + f"; profile {options['profile']}, {options['rounds']} rounds, exit status {run.exit_status}; "
             f"finished {run.finished}.", ""]
    if run.input_changes:
        lines += ["## Input", "", "What the suite changed about the input before timing:", "",
                  *[f"- {change}" for change in run.input_changes], ""]
    lines += ["## Verdicts", ""]
    if run.verdicts:
        lines.append(md_table(("model", "variant", "check", "verdict", "detects", "detail"), [
            (v.model, v.variant, v.verdict.check, _outcome_cell(v.verdict.outcome), _detects(v.verdict), v.verdict.message)
            for v in run.verdicts]))
    else:
        lines.append("No verdicts (recording, or nothing to judge).")
    if run.failures:
        lines += ["", "## Variants that failed", "",
                  md_table(("model", "variant", "stage", "error"),
                           [(f.model, f.variant, f.stage, f"**{f.error}**") for f in run.failures])]
    if run.bug_reports:
        lines += ["", "## Filing it upstream", "",
                  "A folder per finding: `repro.py` (standalone: torch and transformers only), `inputs.npz`, "
                  "`env.txt` (collect_env) and `report.md` (a draft issue):", "",
                  *[f"- {key}: `{path}`" for key, path in run.bug_reports.items()]]
    if run.skipped or run.unreached():
        lines += ["", "## Variants not timed", "",
                  md_table(("model", "variant", "why"),
                           [(s.model, s.variant, f"skipped: {s.reason}") for s in run.skipped]
                           + [(m, v, "never reached: the run was interrupted") for m, v in run.unreached()])]
    lines += ["", "## Timings (summed generate() seconds over the audio set)", "",
              md_table(("model", "variant", "vs", "utterances", "rounds", "eager s", "variant s", "speedup [95% CI]",
                        "RTFx", "WER", "busy rounds", "stalled calls", "machine probe ms"), [
                  (m.model, m.variant, m.reference or "-", f"{m.utterances}{m.batch_text}", m.summary.rounds_used,
                   _fmt(m.summary.reference_seconds and m.summary.reference_seconds.estimate, ".2f"),
                   _fmt(m.summary.seconds.estimate, ".2f"), interval_text(m.summary.speedup),
                   _fmt(m.summary.rtfx, ".1f"), _wer(m.model, m.summary.wer, "%"), m.summary.busy_rounds,
                   m.summary.stalled_calls, _fmt(m.summary.machine_probe_ms, ".1f")) for m in run.measurements])]
    lines += _compile_sections(run.measurements, run.on_cuda)
    lines += _diagnostic_sections(run.measurements)
    lines += _profile_section(run.measurements)
    if charts:
        lines += ["", "## Charts", ""] + [f"![{name}]({path})" for name, path in charts.items()]
    return "\n".join(lines) + "\n"


def _outcome_cell(outcome: Outcome) -> str:
    return f"**{outcome.value.upper()}**" if outcome.fails else outcome.value.upper()


def _detects(verdict) -> str:
    return _fmt(None if verdict.detectable is None else 100 * verdict.detectable, ".0f", "%")


def _cudagraph_cells(totals: CompileTotals, on_cuda: bool) -> tuple[str, str]:
    """(skips in warm-up / while timed, their reasons) for the compile-health table; on a CPU torch
    counts a reasonless skip for every reduce-overhead graph, so the count is not shown."""
    reasons = list(totals.cudagraph_skip_reasons)
    if not on_cuda:
        return "n/a (CPU)", "; ".join(reasons) or "-"
    if totals.cudagraph_skips_unexplained:
        reasons.append(f"{totals.cudagraph_skips_unexplained}: reason not recorded by torch")
    counts = f"{totals.cudagraph_skips_warmup} / {totals.cudagraph_skips_timed}"
    return counts, "; ".join(reasons) or "none"


def _compile_sections(measurements: list[MeasurementRecord], on_cuda: bool) -> list[str]:
    """The report's compile-health and compile-latency sections (compiled variants only)."""
    compiled = [m for m in measurements if m.diagnostics.compile]
    if not compiled:
        return []
    health, latency = [], []
    for m in compiled:
        d, c = m.diagnostics, m.diagnostics.compile
        health.append((m.model, m.variant, c.graphs, c.graph_breaks, c.recompiles_warmup, c.recompiles_timed,
                       *_cudagraph_cells(c, on_cuda), "; ".join(c.recompile_reasons_timed) or "-"))
        cache, cold = d.warmup_compile.fx_graph_cache or {}, d.cold_compile or {}
        latency.append((m.model, m.variant, _fmt(d.first_call_seconds, ".1f"),
                        _fmt(d.warmup_compile.compile_seconds, ".1f"),
                        ", ".join(f"{k} {v}" for k, v in sorted(cache.items())) or "-",
                        _fmt(cold.get("cold_seconds"), ".1f"), _fmt(cold.get("warm_seconds"), ".1f"),
                        cold.get("source", "not measured")))
    return ["", "## Compile health", "",
            "Graphs compiled and recompiles during warm-up; recompiles while timed must be 0. CUDA-graph skips "
            "(warm-up / timed): compile-time and run-time skips as torch counted them; while timed they must be 0, "
            "and every skip needs a reason the baseline knows.", "",
            md_table(("model", "variant", "graphs", "graph breaks", "recompiles (warm-up)", "recompiles (timed)",
                      "CUDA-graph skips (warm-up / timed)", "skip reasons", "failed guard (timed)"), health),
            "", "## Compile latency", "",
            "First compiled call in this run (compile with this machine's caches + one generate()), "
            "dynamo's compile time in warm-up, FX graph cache use; cold/warm: first call in a fresh process "
            "with an empty compile cache, then again with the cache it filled.", "",
            md_table(("model", "variant", "first call s", "compile s", "FX graph cache", "cold s", "warm s",
                      "cold/warm"), latency)]


def _mib_start(memory: dict | None) -> str:
    """What was allocated (CUDA) or resident (CPU) when a build's diagnostic calls started."""
    if not memory or memory.get("start_bytes") is None:
        return "-"
    return f"{memory['start_bytes'] / 2**20:,.0f}"


def _roofline_cells(build: dict) -> tuple[str, str, str]:
    """MB per step, floor ms, % of roofline; "n/a" where the roofline is not available."""
    if build.get("roofline_not_available"):
        return "n/a", "n/a", "n/a"
    r = build.get("roofline") or {}
    return (_fmt(r.get("bytes_per_step") and r["bytes_per_step"] / 1e6, ".1f"), _fmt(r.get("floor_ms"), ".2f"),
            _fmt(r.get("percent_of_roofline"), ".0f", "%"))


def _roofline_gaps(measurements: list[dict]) -> list[str]:
    """The distinct reasons a roofline is not available in these results."""
    reasons = {b.get("roofline_not_available") for m in measurements
               for b in (m.diagnostics.variant or {}, m.diagnostics.reference or {})}
    return sorted(r for r in reasons if r)


def _reference_shown(m: MeasurementRecord) -> str:
    """The eager reference's row label, with the batch size where it is not 1 (per-step figures are per call)."""
    return f"{m.reference} (reference{m.batch_text})"


def _diagnostic_sections(measurements: list[dict]) -> list[str]:
    """The report's peak-memory and per-phase latency / roofline sections."""
    diagnosed = [m for m in measurements if m.diagnostics.variant]
    if not diagnosed:
        return []
    rows, phase_rows = [], []
    for m in diagnosed:
        mine, ref = m.diagnostics.variant, m.diagnostics.reference or {}
        rows.append((m.model, m.variant_shown, _mib(mine.get("peak_memory")), _mib_start(mine.get("peak_memory")),
                     _mib(ref.get("peak_memory")), _mib_start(ref.get("peak_memory")),
                     (mine.get("peak_memory") or {}).get("kind", "-")))
        for build, b in (("variant", mine), (m.reference or "", ref)):
            if b:
                p = b["phases"]
                phase_rows.append((m.model, m.variant_shown if build == "variant" else _reference_shown(m),
                                   _ms(p["encoder_ms"]), _ms(p["first_token_ms"]), _fmt(p["per_token_ms"], ".2f"),
                                   _fmt(p["steps"], ".0f"), *_roofline_cells(b)))
    bw = next((m.diagnostics.bandwidth for m in diagnosed if m.diagnostics.bandwidth), None)
    gaps = "".join(f" Roofline {reason}." for reason in _roofline_gaps(diagnosed))
    return ["", "## Peak memory (MiB)", "",
            "CUDA: the rise of `max_memory_allocated` above what was allocated when the build's diagnostic calls "
            "started (\"at start\": every build measured before it, with its caches and CUDA-graph pool, is still "
            "alive); CPU: the process's peak resident set during the calls, and (\"at start\") its resident set "
            "before them: weights, libraries, every build's caches; the difference is what the calls added.", "",
            md_table(("model", "variant", "variant", "variant at start", "eager reference", "reference at start",
                       "what"), rows),
            "", "## Per-phase latency and roofline", "",
            "Diagnostic calls after the timed rounds. Per token: median interval between decoder steps. "
            "Floor: bytes one decode step must read / memory bandwidth"
            + (f" ({bw['gbps']:.0f} GB/s, {bw['source']})" if bw else "")
            + "; % of roofline = floor / per-token time (see docs/verdicts.md, \"Roofline\")." + gaps, "",
            md_table(("model", "build", "encoder ms", "first token ms", "per token ms", "steps",
                       "MB per step", "floor ms", "% of roofline"), phase_rows)]


def _profile_row(model: str, build: str, profile: dict, device_speedup: str) -> tuple:
    kernels = profile.get("generated_kernels")
    busy = device_time_interval(profile)
    varies = " (varied between calls)" if profile.get("fingerprint_varies") else ""
    return (model, build, profile.get("calls_profiled", 1), profile["decode_steps"],
            _fmt(profile["aten_ops_per_step"], ".1f") + varies, "-" if kernels is None else len(kernels),
            _fmt(profile.get("kernels_per_step"), ".1f"), _fmt(profile.get("cuda_graph_launches"), "d"),
            _fmt(profile.get("memcpys"), "d"), "n/a (CPU)" if busy is None else interval_text(busy, "", 2),
            device_speedup, _fmt(profile.get("host_ms_per_token"), ".3f"))


def _profile_section(measurements: list[MeasurementRecord]) -> list[str]:
    """The report's device-time and fingerprint table: the profiled calls of each build."""
    rows = []
    for m in measurements:
        mine, reference = (m.diagnostics.variant or {}).get("profile"), (m.diagnostics.reference or {}).get("profile")
        if mine:
            rows.append(_profile_row(m.model, m.variant_shown, mine,
                                     interval_text(device_speedup_interval(mine, reference), "x", 2)))
        if reference:
            rows.append(_profile_row(m.model, _reference_shown(m), reference, "-"))
    if not rows:
        return []
    return ["", "## Device time and fingerprint", "",
            "Profiled calls of each build under torch.profiler, apart from the timed rounds, the variant's and its "
            "reference's in alternation (several on a GPU, one on a CPU). Aten ops: top-level operator calls on the "
            "host per decode step; generated kernels: inductor's kernels in the graphs the call ran; device kernels "
            "per step, CUDA-graph launches and memcpys per call, device busy ms per call (the union of the GPU's "
            "activity; its interval over the profiled calls), device speedup (the reference's device busy / the "
            "variant's, paired by call) and host ms per token (the utterance's timed seconds less device busy, per "
            "token) on a GPU only. The fingerprint verdict above says what changed since the baseline.", "",
            md_table(("model", "build", "calls profiled", "decode steps", "aten ops per step",
                      "distinct generated kernels", "device kernels per step", "CUDA-graph launches", "memcpys",
                      "device busy ms", "device speedup", "host ms per token"), rows)]


def write_reports(results_path, run: RunResult, baselines: dict) -> dict:
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
        for name, draw in (("speedup", lambda p: speedup_chart(run, baselines, p)),
                           ("phases", lambda p: phases_chart(run, p))):
            path = Path(f"{stem}-{name}.png")
            try:
                if not path.exists() and draw(path):
                    charts[name] = path.name
                    written[name] = path
            except Exception as exc:  # a chart is never worth a failed run: say so and go on
                import warnings

                warnings.warn(f"whisper_perf: could not draw {path.name}: {type(exc).__name__}: {exc}")
    markdown = markdown_report(run, charts)
    written["markdown"] = write_new([Path(f"{stem}.md")], markdown)  # never over an earlier run's report
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown_report(run) + "\n")
        written["github_step_summary"] = Path(summary)
    return written


def diagnostics_table(measurements: list[MeasurementRecord]) -> str:
    """One terminal row per model x variant: compile health, compile latency, peak memory, phases
    and roofline (the Markdown report has the details)."""
    rows = []
    for m in measurements:
        d, c = m.diagnostics, m.diagnostics.compile
        mine, cold = d.variant or {}, d.cold_compile or {}
        p = mine.get("phases") or {}
        if not (c or mine):
            continue
        _, floor, percent = _roofline_cells(mine)
        rows.append((m.model, m.variant, _fmt(c and c.graphs, "d"), _fmt(c and c.graph_breaks, "d"),
                     _fmt(c and c.recompiles_timed, "d"), _fmt(cold.get("cold_seconds"), ".1f"),
                     _fmt(cold.get("warm_seconds"), ".1f"), _mib(mine.get("peak_memory")),
                     _fmt(p.get("encoder_ms"), ".1f"), _fmt(p.get("first_token_ms"), ".1f"),
                     _fmt(p.get("per_token_ms"), ".2f"), floor, percent))
    if not rows:
        return ""
    table = _table(("model", "variant", "graphs", "breaks", "recompiles timed", "cold s", "warm s", "peak MiB",
                    "encoder ms", "1st token ms", "per token ms", "floor ms", "roofline"), rows)
    return "\n".join([table, *(f"roofline {reason}" for reason in _roofline_gaps(measurements))])

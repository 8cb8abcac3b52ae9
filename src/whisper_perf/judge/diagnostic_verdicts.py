"""The diagnostic checks: compile health, the one-number ceilings (peak memory, cold and warm
compile seconds) and the fingerprint of the code a build runs, judged against the baseline's
``diagnostics`` by the rules of the speed checks where they apply (verdicts.absolute_terms)."""

from __future__ import annotations

from dataclasses import replace

from ..build.compile_health import CompileTotals
from ..measure.kernel_profile import fingerprint_changes
from .baselines import Entry
from .verdicts import Outcome, Verdict, absolute_terms, seeded_note


def _cudagraph_problems(warmup, timed) -> list[str]:
    """CUDA graphs skipped while timed (those calls ran without them, whatever the baseline says),
    and skips in warm-up that torch counted without logging a reason (nothing to compare)."""
    problems = []
    if timed.cudagraph_skips:
        why = list(timed.cudagraph_skip_reasons)
        if timed.cudagraph_skips_unexplained:
            why.append(f"{timed.cudagraph_skips_unexplained} with reason not recorded by torch")
        problems.append(f"{timed.cudagraph_skips} CUDA-graph skip(s) during the timed rounds ({'; '.join(why)})")
    if warmup.cudagraph_skips_unexplained:
        problems.append(f"{warmup.cudagraph_skips_unexplained} CUDA-graph skip(s) in warm-up, "
                        "reason not recorded by torch")
    return problems


def judge_compile_health(warmup, timed, expected: dict | None, *, cuda: bool) -> Verdict:
    """Compile health (compile_health.CompileHealth of the warm-up and of the timed rounds)
    against the baseline's ``diagnostics``: any recompile inside the timed rounds fails (its
    compile time lands in the timings), as do more graph breaks than the baseline or a CUDA-graph
    skip reason the baseline did not have.  On CUDA (``cuda``) so does any CUDA-graph skip while
    timed, or one without a reason; on a CPU torch counts a reasonless skip for every graph of a
    ``reduce-overhead`` build (CUDA graphs do not apply there), so skip counts are not judged."""
    expected = expected or {}
    totals = CompileTotals.of(warmup, timed)
    skips = totals.cudagraph_skip_reasons
    problems = []
    if totals.recompiles_timed:
        why = "; ".join(totals.recompile_reasons_timed) or "no guard failure recorded"
        problems.append(f"{totals.recompiles_timed} recompile(s) during the timed rounds, after warm-up "
                        f"(failed guard: {why})")
    if "graph_breaks" in expected and totals.graph_breaks > expected["graph_breaks"]:
        problems.append(f"{totals.graph_breaks} graph break(s), baseline {expected['graph_breaks']} "
                        f"({'; '.join(totals.graph_break_reasons)})")
    new_skips = [s for s in skips if s not in expected.get("cudagraph_skip_reasons", [])]
    if "cudagraph_skip_reasons" in expected and new_skips:
        problems.append(f"CUDA graphs newly skipped: {'; '.join(new_skips)}")
    if cuda:
        problems += _cudagraph_problems(warmup, timed)
        counted = (f"{totals.cudagraph_skips_warmup} CUDA-graph skip(s) in warm-up, {totals.cudagraph_skips_timed} "
                   f"while timed{': ' + '; '.join(skips) if skips else ''}")
    else:
        counted = f"CUDA graphs n/a on a CPU{' (skip reasons: ' + '; '.join(skips) + ')' if skips else ''}"
    summary = (f"{totals.graphs} graph(s) compiled in warm-up ({totals.recompiles_warmup} recompile(s) there), "
               f"{totals.graph_breaks} graph break(s), {totals.recompiles_timed} recompile(s) while timed, {counted}")
    if problems:
        return Verdict("compile health", Outcome.REGRESSION, "; ".join(problems) + f" [{summary}]")
    if not expected:  # what needs no baseline (no recompile while timed) was judged; the rest not
        return Verdict("compile health", Outcome.PASS, summary + " (no baseline diagnostics: graph breaks and "
                       "CUDA-graph skip reasons not compared)")
    return Verdict("compile health", Outcome.PASS, summary)


def _figure(value: float) -> str:
    """Three significant figures, written out: 1,090 MiB rather than 1.09e+03 MiB."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def judge_ceiling(check: str, measured: float, baseline: float | None, tolerance: float, unit: str,
                  record_hint: str) -> Verdict:
    """A one-number check with no interval (peak memory, compile seconds): a regression above
    ``baseline x (1 + tolerance)``."""
    shown = f"{_figure(measured)} {unit}"
    if baseline is None:
        return Verdict(check, Outcome.NO_BASELINE, f"{check} {shown} (no baseline; record one: {record_hint})")
    ceiling = baseline * (1 + tolerance)
    against = f"baseline {_figure(baseline)} {unit}, tolerance {tolerance:.0%}"
    if measured > ceiling:
        return Verdict(check, Outcome.REGRESSION, f"{check} {shown} is above {_figure(ceiling)} {unit} ({against})")
    return Verdict(check, Outcome.PASS, f"{check} {shown} within {against}")


def _fingerprint_text(found: dict) -> str:
    kernels = found.get("generated_kernels")
    parts = [f"{found['aten_ops_per_step']:g} aten ops per decode step"]
    if kernels is not None:
        parts.append(f"{len(kernels)} distinct generated kernel(s)")
    if "kernels_per_step" in found:
        parts.append(f"{found['kernels_per_step']:g} device kernels per decode step, "
                     f"{found['cuda_graph_launches_per_call']} CUDA-graph launch(es) and "
                     f"{found.get('memcpys_per_call', '?')} memcpy(s) per call")
    return ", ".join(parts)


def judge_fingerprint(found: dict | None, expected: dict | None, record_hint: str) -> Verdict:
    """The code a build runs (kernel_profile.fingerprint_of) against the baseline's: PASS when
    unchanged, CHANGED naming what was added and removed.  A change is reported, never failed:
    the speed checks say whether it cost anything, the fingerprint says what the compiler did."""
    if found is None:
        return Verdict("fingerprint", Outcome.NOT_APPLICABLE, "fingerprint not measured (no profiled call)")
    if not expected:
        return Verdict("fingerprint", Outcome.NO_BASELINE,
                       f"{_fingerprint_text(found)} (no baseline fingerprint; record one: {record_hint})")
    changes = fingerprint_changes(expected, found)
    if changes:
        return Verdict("fingerprint", Outcome.CHANGED, f"changed since the baseline: {'; '.join(changes)}")
    return Verdict("fingerprint", Outcome.PASS, f"unchanged: {_fingerprint_text(found)}")


def judge_compile_latency(check: str, seconds: float, entry: Entry | None, tolerance: float, summary, record_hint: str,
                          *, on_cuda: bool, device_name: str | None) -> Verdict:
    """The first compiled call's seconds (cold or warm) against the entry's, by the rules of the
    time checks (absolute_terms): at the recording's machine speed on a CPU, never on a busy
    machine, across CPU models or beyond the speed change adjusted for."""
    expected = entry.diagnostics.get(f"{check.split()[0]}_compile_seconds") if entry else None
    if expected is None:
        return judge_ceiling(check, seconds, None, tolerance, "s", record_hint)
    factor, unreliable = absolute_terms(summary, entry, on_cuda=on_cuda, device_name=device_name)
    if unreliable:
        return Verdict(check, Outcome.UNRELIABLE, f"{check} {seconds:.3g} s not judged: unreliable: {unreliable}")
    verdict = judge_ceiling(check, seconds * (factor or 1.0), expected, tolerance, "s", record_hint)
    if factor:
        shown = f"{check} {seconds * factor:.3g} s"
        verdict = replace(verdict, message=verdict.message.replace(
            shown, f"{shown} at the recording's machine speed (x{factor:.3f}; as measured {seconds:.3g} s)", 1))
    return seeded_note(verdict, entry)

"""What a run tells its reader: the measurement table, then the verdicts."""

from __future__ import annotations

import math

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

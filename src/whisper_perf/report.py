"""What a run tells its reader: one row per model x variant."""

from __future__ import annotations

from . import accuracy
from .timing import Measurement, Pass


def _wer(measurement: Measurement, passes: list[Pass]) -> float | None:
    if not passes:
        return None
    ids = list(measurement.reference_texts)
    last = passes[-1]  # transcripts of greedy decoding are the same every pass
    return accuracy.wer([measurement.reference_texts[i] for i in ids], [last.transcripts[i].text for i in ids])


def summary_row(m: Measurement) -> dict:
    seconds = sum(p.seconds for p in m.passes) / len(m.passes)
    row = {
        "model": m.model, "variant": m.variant, "audio": m.audio_set, "rounds": len(m.passes),
        "seconds": seconds, "rtfx": m.audio_seconds / seconds if seconds else None,
        "wer": _wer(m, m.passes), "first_call_s": m.first_call_seconds,
        "reference": m.reference, "reference_seconds": None, "speedup": None, "reference_wer": None,
    }
    if m.reference_passes:
        ref = sum(p.seconds for p in m.reference_passes) / len(m.reference_passes)
        row.update(reference_seconds=ref, speedup=ref / seconds, reference_wer=_wer(m, m.reference_passes))
    return row


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(measurements: list[Measurement]) -> str:
    header = ("model", "variant", "audio", "rounds", "eager s", "variant s", "speedup", "RTFx",
              "WER eager", "WER", "1st call s")
    rows = [header]
    for m in measurements:
        r = summary_row(m)
        rows.append((r["model"], r["variant"], r["audio"], str(r["rounds"]), _fmt(r["reference_seconds"], ".2f"),
                     _fmt(r["seconds"], ".2f"), _fmt(r["speedup"], ".3f") + ("x" if r["speedup"] else ""),
                     _fmt(r["rtfx"], ".1f"), _fmt(r["reference_wer"] and 100 * r["reference_wer"], ".1f"),
                     _fmt(None if r["wer"] is None else 100 * r["wer"], ".1f"), _fmt(r["first_call_s"], ".1f")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

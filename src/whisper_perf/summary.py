"""The numbers of one measurement: times with intervals, speedup, RTFx, WER, exact matches."""

from __future__ import annotations

from dataclasses import dataclass

from . import accuracy
from .stats import Interval, coefficient_of_variation, speedup_interval, total_interval
from .timing import Measurement, Pass


def _table(passes: list[Pass], order: list[str]) -> list[list[float]]:
    return [[{s.utterance: s.seconds for s in p.samples}[u] for u in order] for p in passes]


def _wer(m: Measurement, passes: list[Pass]) -> float:
    ids = list(m.reference_texts)
    return accuracy.wer([m.reference_texts[i] for i in ids], [passes[-1].transcripts[i].text for i in ids])


@dataclass(frozen=True)
class Summary:
    seconds: Interval  # summed seconds per pass of the variant
    wer: float
    rtfx: float
    tokens: int  # text tokens per pass
    noise_cv: float  # coefficient of variation of pass totals
    reference_seconds: Interval | None = None
    reference_wer: float | None = None
    speedup: Interval | None = None
    exact_match: float | None = None  # share of utterances whose token ids equal the reference's

    def as_dict(self) -> dict:
        data = {"seconds": self.seconds.as_dict(), "wer": self.wer, "rtfx": self.rtfx, "tokens": self.tokens,
                "noise_cv": self.noise_cv}
        if self.speedup is not None:
            data.update(reference_seconds=self.reference_seconds.as_dict(), reference_wer=self.reference_wer,
                        speedup=self.speedup.as_dict(), exact_match=self.exact_match)
        return data


def summarize(m: Measurement, confidence: float = 0.95) -> Summary:
    order = list(m.reference_texts)
    seconds = total_interval(_table(m.passes, order), confidence)
    base = dict(seconds=seconds, wer=_wer(m, m.passes), rtfx=m.audio_seconds / seconds.estimate,
                tokens=m.passes[-1].tokens, noise_cv=coefficient_of_variation([p.seconds for p in m.passes]))
    if not m.reference_passes:
        return Summary(**base)
    mine, theirs = m.passes[-1].transcripts, m.reference_passes[-1].transcripts
    same = sum(mine[u].token_ids == theirs[u].token_ids for u in order)
    return Summary(**base,
                   reference_seconds=total_interval(_table(m.reference_passes, order), confidence),
                   reference_wer=_wer(m, m.reference_passes),
                   speedup=speedup_interval(_table(m.reference_passes, order), _table(m.passes, order), confidence),
                   exact_match=same / len(order))

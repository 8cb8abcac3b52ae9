"""The numbers of one measurement: times with intervals, speedup, RTFx, WER, exact matches, and
whether the machine was quiet enough to trust them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..measure import accuracy
from ..measure.contention import MIN_QUIET_ROUNDS
from . import sequential
from .stats import Interval, coefficient_of_variation, speedup_interval, stalled_calls, total_interval

if TYPE_CHECKING:  # reading a results file needs no torch
    from ..measure.timing import Measurement, Pass



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
    rounds_used: int
    busy_rounds: int
    stalled_calls: int = 0  # calls left out as stalls (see stats), with their paired calls
    unreliable: str | None = None  # why the timings cannot be judged (machine busy), with evidence
    reference_seconds: Interval | None = None
    reference_wer: float | None = None
    speedup: Interval | None = None
    exact_match: float | None = None  # share of utterances whose token ids equal the reference's
    machine_probe_ms: float | None = None  # machine_speed.probe_ms(), mean over the calls of the rounds used
    adaptive: dict | None = None  # --detect: timing.Measurement.adaptive (note, reached, rounds, looks)

    def as_dict(self) -> dict:
        data = {"seconds": self.seconds.as_dict(), "wer": self.wer, "rtfx": self.rtfx, "tokens": self.tokens,
                "noise_cv": self.noise_cv, "rounds_used": self.rounds_used, "busy_rounds": self.busy_rounds,
                "stalled_calls": self.stalled_calls, "unreliable": self.unreliable,
                "machine_probe_ms": self.machine_probe_ms, **({"adaptive": self.adaptive} if self.adaptive else {})}
        if self.speedup is not None:
            data.update(reference_seconds=self.reference_seconds.as_dict(), reference_wer=self.reference_wer,
                        speedup=self.speedup.as_dict(), exact_match=self.exact_match)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Summary:
        return cls(seconds=Interval.from_dict(data["seconds"]), wer=data["wer"], rtfx=data["rtfx"],
                   tokens=data["tokens"], noise_cv=data["noise_cv"], rounds_used=data["rounds_used"],
                   busy_rounds=data["busy_rounds"], stalled_calls=data.get("stalled_calls", 0),
                   unreliable=data.get("unreliable"), reference_seconds=Interval.from_dict(data.get("reference_seconds")),
                   reference_wer=data.get("reference_wer"), speedup=Interval.from_dict(data.get("speedup")),
                   exact_match=data.get("exact_match"), machine_probe_ms=data.get("machine_probe_ms"),
                   adaptive=_adaptive_record(data.get("adaptive")))


def _busy_evidence(m: Measurement) -> str:
    busy = m.busy_rounds
    worst = max((m.loads[r] for r in busy), key=lambda load: load.others_cores or 0.0)
    stopped = f"; {m.timing_stopped}" if m.timing_stopped else ""
    return (f"machine busy in {len(busy)} of {len(m.loads)} rounds, only {len(m.quiet_rounds)} quiet "
            f"(worst round: {worst.evidence()}{stopped}). Stop other work on this machine, or run where the "
            f"cores are not shared, and run again")


def _probe_mean(m: Measurement, rounds: list[int]) -> float | None:
    """The machine-speed probe's mean over the calls of ``rounds``: the mean, as the times it
    adjusts are sums over the same calls."""
    if len(m.probes) != len(m.passes):
        return None
    values = [p for r in rounds for p in m.probes[r]]
    return round(statistics.fmean(values), 4) if values else None


def _intervals(sequential_intervals: bool, rounds: list[int]):
    """(rounds used, time interval, speedup interval): the stratified bootstrap for a fixed number
    of rounds; for adaptive rounds (--detect) the sequential intervals over the rounds of the last
    look, which stay valid however many rounds the run chose to take."""
    if sequential_intervals and sequential.last_look(len(rounds)):
        return rounds[:sequential.last_look(len(rounds))], sequential.total_interval, sequential.speedup_interval
    return rounds, total_interval, speedup_interval


def summarize(m: Measurement, confidence: float = 0.95, sequential_intervals: bool = False) -> Summary:
    """Summarize the quiet rounds; with fewer than two, all rounds, marked unreliable."""
    order = [s.utterance for s in m.passes[0].samples]  # the calls of a round: utterances, or batches (--batch)
    rounds = m.quiet_rounds
    unreliable = None
    if len(rounds) < MIN_QUIET_ROUNDS and m.busy_rounds:
        unreliable = _busy_evidence(m)
        rounds = list(range(len(m.passes)))
    rounds, time_ci, speedup_ci = _intervals(sequential_intervals and not unreliable, rounds)
    passes = [m.passes[r] for r in rounds]
    table = _table(passes, order)
    seconds = time_ci(table, confidence)
    base = dict(seconds=seconds, wer=_wer(m, m.passes), rtfx=m.audio_seconds / seconds.estimate,
                stalled_calls=stalled_calls(table),
                tokens=m.passes[-1].tokens, noise_cv=coefficient_of_variation([p.seconds for p in passes]),
                rounds_used=len(rounds), busy_rounds=len(m.busy_rounds), unreliable=unreliable,
                machine_probe_ms=_probe_mean(m, rounds), adaptive=m.adaptive)
    if not m.reference_passes:
        return Summary(**base)
    references = [m.reference_passes[r] for r in rounds]
    base["stalled_calls"] = stalled_calls(_table(references, order), table)
    mine, theirs = m.passes[-1].transcripts, m.reference_passes[-1].transcripts
    same = sum(mine[u].token_ids == theirs[u].token_ids for u in m.reference_texts)
    return Summary(**base,
                   reference_seconds=time_ci(_table(references, order), confidence),
                   reference_wer=_wer(m, m.reference_passes),
                   speedup=speedup_ci(_table(references, order), table, confidence),
                   exact_match=same / len(m.reference_texts))


def _adaptive_record(data: dict | str | None) -> dict | None:
    """Summary.adaptive of a results file; files written before it was a record held the note alone."""
    return {"note": data} if isinstance(data, str) else data

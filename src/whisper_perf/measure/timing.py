"""Timing ``generate()`` per utterance, interleaved with the eager reference.

Inputs are prepared before the clock starts (feature extraction, copy to the device: the
short-form protocol times ``generate()`` alone).  On CUDA the device is synchronized before each
call and the call is timed with CUDA events; on CPU with ``perf_counter``.  Every raw sample is
kept, with the number of text tokens generated.

A compiled variant and its eager reference are interleaved *per utterance*, in ABBA order
(reference, variant, variant, reference, ...): the two calls of a pair are seconds apart, so a
machine that drifts (frequency, neighbours on a shared host) moves both alike, and neither build
always goes first.  Measured on a 2-core VM, per-utterance interleaving cut the round-to-round
spread of the speedup from 5.5% (a whole pass of one, then a whole pass of the other) to 2%.

Each round is metered for contention (see ``contention``); a round taken on a busy machine is
kept as evidence but not used, and is replaced by an extra round when the budget allows.  Each
timed call is preceded by the machine-speed probe (see ``machine_speed``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..build.compile_health import CompileWatch
from ..build.variants import Transcript, Variant, synchronize
from ..inputs.audio import AudioSet
from .contention import MIN_QUIET_ROUNDS, OTHERS_BUSY_CORES, Load, LoadMeter, sample_idle
from .machine_speed import probe_ms


@dataclass
class Sample:
    utterance: str
    seconds: float
    tokens: int


@dataclass
class Pass:
    """One pass of a variant over an audio set."""

    variant: str
    samples: list[Sample] = field(default_factory=list)
    transcripts: dict[str, Transcript] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.samples)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.samples)


def timed_call(variant: Variant, inputs):
    """(seconds, output) of one ``variant.run(inputs)``."""
    if variant.hardware.is_cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        output = variant.run(inputs)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000.0, output
    synchronize(variant.hardware)
    begin = time.perf_counter()
    output = variant.run(inputs)
    return time.perf_counter() - begin, output


def _record(variant: Variant, target: Pass, unit, inputs) -> None:
    """One timed call of ``unit`` (an utterance, or a batch of them: one sample, the scored
    utterances' transcripts)."""
    seconds, output = timed_call(variant, inputs)
    transcripts, tokens = variant.transcripts(output, unit)
    target.samples.append(Sample(unit.id, seconds, tokens))
    target.transcripts.update(transcripts)


def run_pass(variant: Variant, audio: AudioSet) -> Pass:
    result = Pass(variant.name)
    for unit in audio.units:
        _record(variant, result, unit, variant.inputs(unit))
    return result


@dataclass
class Measurement:
    """All rounds of one model x variant over one audio set.  Round ``r`` is ``passes[r]``, its
    paired reference pass ``reference_passes[r]`` (empty for an eager variant) and ``loads[r]``."""

    model: str
    variant: str
    reference: str | None
    audio_set: str
    audio_seconds: float
    setup: dict  # Variant.describe()
    reference_texts: dict[str, str]  # utterance id -> reference text
    passes: list[Pass] = field(default_factory=list)
    reference_passes: list[Pass] = field(default_factory=list)
    loads: list[Load] = field(default_factory=list)
    probes: list[list[float]] = field(default_factory=list)  # per round: machine_speed.probe_ms() per call
    first_call_seconds: float | None = None
    warmup_seconds: float | None = None
    rounds_requested: int = 0
    warmup_compile: object = None  # compile_health.CompileHealth of the variant's warm-up
    timed_compile: object = None  # ... of the timed rounds: anything compiled here is a recompile
    timing_stopped: str | None = None  # why timing ended before every requested or replacement round
    adaptive: dict | None = None  # --detect: every look, the detectable slowdown reached, why the rounds ended

    @property
    def busy_rounds(self) -> list[int]:
        return [r for r, load in enumerate(self.loads) if load.busy]

    @property
    def quiet_rounds(self) -> list[int]:
        return [r for r in range(len(self.passes)) if r not in self.busy_rounds]


class _StopTiming(Exception):
    """Raised between rounds when more rounds cannot change the verdict (the message says why)."""


class _Schedule:
    """The ABBA order of one measurement, split into pytest-benchmark's ``setup`` (everything
    untimed before the next timed call: the reference call(s) and input preparation) and its
    ``target`` (the variant's timed call)."""

    def __init__(self, m: Measurement, variant: Variant, reference: Variant | None, audio: AudioSet,
                 on_round=None, busy_cores: float | None = OTHERS_BUSY_CORES):
        self.m, self.variant, self.reference = m, variant, reference
        self.units = audio.units  # one timed call each: an utterance, or a batch (--batch)
        self.busy_cores = busy_cores  # --busy-threshold (None: off)
        self.on_round = on_round  # on_round(round number, its contention.Load) once a round is timed
        self.calls = 0  # variant calls scheduled so far, over all rounds
        self.pending_reference = None  # (pass, utterance) whose reference call follows the variant's
        self.meter: LoadMeter | None = None

    def _run_reference(self, target: Pass, utterance) -> None:
        _record(self.reference, target, utterance, self.reference.inputs(utterance))

    def _flush(self) -> None:
        if self.pending_reference:
            self._run_reference(*self.pending_reference)
            self.pending_reference = None

    def _close_round(self) -> None:
        self._flush()
        if self.meter is not None:
            self.meter.__exit__(None, None, None)
            self.m.loads.append(self.meter.load)
            self.meter = None
            if self.on_round is not None:
                self.on_round(len(self.m.loads), self.m.loads[-1])

    def setup(self):
        index = self.calls % len(self.units)
        if index == 0:  # a new round
            self._close_round()
            hopeless = self._hopeless()
            if hopeless:
                raise _StopTiming(hopeless)
            self.m.probes.append([])
            self.m.passes.append(Pass(self.variant.name))
            if self.reference:
                self.m.reference_passes.append(Pass(self.reference.name))
            self.meter = LoadMeter(self.busy_cores).__enter__()
        self._flush()
        utterance = self.units[index]
        if self.reference:
            if self.calls % 2 == 0:
                self._run_reference(self.m.reference_passes[-1], utterance)
            else:
                self.pending_reference = (self.m.reference_passes[-1], utterance)
        self.current = utterance
        self.calls += 1
        inputs = self.variant.inputs(utterance)
        self.m.probes[-1].append(probe_ms())  # just before the timed call: the machine's speed now
        return (inputs,), {}

    def _hopeless(self) -> str | None:
        """Why timing more rounds cannot change the verdict: too many rounds were busy for the rest
        to make enough quiet ones (MIN_QUIET_ROUNDS), and the load is still there (a
        replacement round only helps once it has gone)."""
        m = self.m
        remaining = max(0, m.rounds_requested - len(m.loads))
        if not m.busy_rounds or len(m.quiet_rounds) + remaining >= MIN_QUIET_ROUNDS:
            return None
        still = sample_idle(1.0, self.busy_cores)
        if not still.busy:
            return None
        return (f"timing stopped after {len(m.loads)} round(s): the verdict could only be unreliable and the machine "
                f"is still busy ({still.evidence()})")

    def target(self, inputs) -> None:
        _record(self.variant, self.m.passes[-1], self.current, inputs)

    def run_rounds(self, rounds: int) -> None:
        for _ in range(rounds * len(self.units)):
            args, _ = self.setup()
            self.target(*args)
        self._close_round()


def _replace_busy_rounds(m: Measurement, schedule: _Schedule, extra: int) -> None:
    """Time up to ``extra`` more rounds while fewer than the requested are quiet.  A replacement
    round only helps once the load has gone: while it stays, every round would be busy too (and
    slow), so stop and say so rather than time them all."""
    while not m.timing_stopped and len(m.quiet_rounds) < m.rounds_requested and extra > 0:
        still = sample_idle(1.0, schedule.busy_cores)
        if still.busy:
            m.timing_stopped = (f"machine still busy after the requested rounds ({still.evidence()}): "
                                 f"{extra} replacement round(s) not timed")
            return
        try:
            schedule.run_rounds(1)
        except _StopTiming as stop:
            m.timing_stopped = str(stop)
        extra -= 1


class StoppingRule(Protocol):
    """What the adaptive rounds (--detect) ask of the rule the judge hands them (judge.adaptive.Adaptive):
    the measuring decides nothing about verdicts itself."""

    detect: float
    budget_seconds: float
    floors: dict[str, float]
    max_rounds: int

    def at_look(self, quiet_rounds: int) -> bool: ...

    def last_look(self, quiet_rounds: int) -> int: ...

    def detectable(self, m: Measurement) -> dict[str, float]: ...

    def met(self, found: dict[str, float]) -> bool: ...

    def note(self, quiet_rounds: int, found: dict | None, why: str | None, seconds: float) -> str: ...


def _rounds_until_detectable(m: Measurement, schedule: _Schedule, rule: StoppingRule, start: float) -> None:
    """Add rounds until each check could detect ``rule.detect``, judging only at the rule's looks;
    m.adaptive records every look, what was reached and why it stopped."""
    looks, found, why = [], None, None
    while not m.timing_stopped:
        if rule.at_look(len(m.quiet_rounds)):
            found = rule.detectable(m)
            looks.append({"rounds": len(m.quiet_rounds), "seconds": round(time.perf_counter() - start, 2),
                          "detectable": found})
            if rule.met(found):
                break
        if time.perf_counter() - start >= rule.budget_seconds:
            why = f"the machine was too noisy within {rule.budget_seconds / 60:g} min"
            break
        if len(m.quiet_rounds) >= rule.max_rounds:
            why = f"the last look ({rule.max_rounds} rounds) was reached"
            break
        try:
            schedule.run_rounds(1)
        except _StopTiming as stop:
            m.timing_stopped = str(stop)
    seconds = time.perf_counter() - start
    m.adaptive = {"note": rule.note(len(m.quiet_rounds), found, m.timing_stopped or why, seconds),
                  "asked": rule.detect, "reached": max(found.values()) if found else None,
                  "met": bool(found) and rule.met(found), "rounds": rule.last_look(len(m.quiet_rounds)),
                  "seconds": round(seconds, 2), "floors": rule.floors, "looks": looks}


def measure(variant: Variant, reference: Variant | None, audio: AudioSet, rounds: int,
            pedantic=None, extra_rounds: int | None = None, progress=None,
            adaptive: StoppingRule | None = None, busy_cores: float | None = OTHERS_BUSY_CORES) -> Measurement:
    """Time ``rounds`` rounds of ``variant`` over ``audio``, interleaved with its eager ``reference``.

    ``pedantic`` is pytest-benchmark's ``benchmark.pedantic``: it then times each of the
    variant's ``generate()`` calls (one pytest-benchmark round per call) and lands them in
    pytest-benchmark's JSON.  Rounds taken on a busy machine are replaced by up to
    ``extra_rounds`` more (default: as many as requested), timed outside pytest-benchmark.
    ``progress(text)``, when given, hears of each round as it ends.  With ``adaptive`` (--detect),
    more rounds follow until the variant could detect the slowdown asked for (judge.adaptive.Adaptive).
    ``busy_cores`` is --busy-threshold: what other processes may use before a round is busy (None: off)."""
    m = Measurement(
        model=variant.model_name, variant=variant.name, reference=reference.name if reference else None,
        audio_set=audio.name, audio_seconds=sum(unit.seconds for unit in audio.units), setup=variant.describe(),
        reference_texts={u.id: u.text for u in audio.utterances},
        first_call_seconds=variant.first_call_seconds, warmup_seconds=variant.warmup_seconds,
        rounds_requested=rounds, warmup_compile=variant.warmup_compile)
    start = time.perf_counter()

    def on_round(number: int, load) -> None:
        if progress is not None:
            label = (f"round {number} of {rounds}" if number <= rounds else
                     f"round {number} (--detect)" if adaptive is not None and not m.busy_rounds else
                     f"replacement round {number - rounds}")
            progress(f"timing {variant.name}: {label} done{' (machine busy)' if load.busy else ''}, "
                     f"{time.perf_counter() - start:.0f} s")

    schedule = _Schedule(m, variant, reference, audio, on_round, busy_cores)
    with CompileWatch() as watch:
        try:
            if pedantic is not None:
                pedantic(schedule.target, setup=schedule.setup, rounds=rounds * len(audio.units), iterations=1,
                         warmup_rounds=0)
                schedule._close_round()
            else:
                schedule.run_rounds(rounds)
        except _StopTiming as stop:  # pytest-benchmark keeps no table row for it; the results file has all
            m.timing_stopped = str(stop)
        _replace_busy_rounds(m, schedule, rounds if extra_rounds is None else extra_rounds)
        if adaptive is not None:
            _rounds_until_detectable(m, schedule, adaptive, start)
            if progress is not None:
                progress(f"timing {variant.name}: {m.adaptive['note']}")
    m.timed_compile = watch.health if variant.spec.compiled else None
    return m

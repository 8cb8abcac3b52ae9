"""Timing ``generate()`` per utterance.

Inputs are prepared before the clock starts (feature extraction, copy to the device: the
short-form protocol times ``generate()`` alone).  On CUDA the device is synchronized before each
call and the call is timed with CUDA events; on CPU with ``perf_counter``.  Every raw sample is
kept, with the number of text tokens generated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .audio import AudioSet
from .variants import Transcript, Variant, synchronize


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


def run_pass(variant: Variant, audio: AudioSet) -> Pass:
    result = Pass(variant.name)
    for utterance in audio.utterances:
        inputs = variant.inputs(utterance)
        seconds, output = timed_call(variant, inputs)
        transcript = variant.transcript(output)
        result.samples.append(Sample(utterance.id, seconds, len(transcript.token_ids)))
        result.transcripts[utterance.id] = transcript
    return result


@dataclass
class Measurement:
    """All passes of one model x variant over one audio set, with its paired reference passes
    (the eager build, timed in alternation with it)."""

    model: str
    variant: str
    reference: str | None
    audio_set: str
    audio_seconds: float
    setup: dict  # Variant.describe()
    reference_texts: dict[str, str]  # utterance id -> reference text
    passes: list[Pass] = field(default_factory=list)
    reference_passes: list[Pass] = field(default_factory=list)
    first_call_seconds: float | None = None
    warmup_seconds: float | None = None


def measure(variant: Variant, reference: Variant | None, audio: AudioSet, rounds: int,
            pedantic=None) -> Measurement:
    """Time ``rounds`` passes of ``variant``, each right after a pass of its eager ``reference``.

    ``pedantic`` is pytest-benchmark's ``benchmark.pedantic``: it then times the variant's passes
    (the reference pass is its untimed ``setup``) and lands them in pytest-benchmark's JSON."""
    m = Measurement(
        model=variant.model_name, variant=variant.name, reference=reference.name if reference else None,
        audio_set=audio.name, audio_seconds=audio.seconds, setup=variant.describe(),
        reference_texts={u.id: u.text for u in audio.utterances},
        first_call_seconds=variant.first_call_seconds, warmup_seconds=variant.warmup_seconds)

    def reference_pass():
        m.reference_passes.append(run_pass(reference, audio))

    def timed_pass():
        m.passes.append(run_pass(variant, audio))

    setup = reference_pass if reference else None
    if pedantic is not None:
        pedantic(timed_pass, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    else:
        for _ in range(rounds):
            if setup:
                setup()
            timed_pass()
    return m

"""Where the time of one ``generate()`` goes: encoder, first token, per-token decode; and peak memory.

Measured in separate diagnostic calls after the timed rounds, so that the timed ``generate()``
is never changed.  A diagnostic call wraps the variant's ``forward`` (the decoder step, compiled
or not) with a clock that notes when each step returns (after a device synchronize on CUDA):

* time to first token: from the start of ``generate()`` to the end of the first decoder step
  (feature-to-encoder-output plus the prompt's step);
* per-token decode: the median interval between the ends of consecutive steps (one decoder step
  plus generate's own per-token work: logits processing, stopping criteria);
* encoder: the encoder alone on the same features, timed separately.

Peak memory of each build over its diagnostic calls: on CUDA its rise, ``max_memory_allocated``
(after resetting the peak) minus ``memory_allocated`` when the calls start, kept beside that start
figure (every build of the run, its caches and CUDA-graph memory pool, stays alive until the end
of the run, so the peak itself depends on which builds ran before; the rise does not), and the
reserved peak's rise likewise; on Linux CPUs the process's peak resident set (VmHWM), reset
through ``/proc/self/clear_refs`` so that it covers these calls only (it then includes everything
the process holds: the shared weights and every build's caches).
"""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class PhaseTimes:
    encoder_ms: float
    first_token_ms: float
    per_token_ms: float | None  # None when no call generated more than one token
    steps: float  # decoder steps per call (median)
    prompt_tokens: int
    calls: int

    @property
    def mean_position(self) -> float:
        """Average self-attention context over a call's steps."""
        return self.prompt_tokens + self.steps / 2

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PeakMemory:
    bytes: int | None  # what is judged: on CUDA the rise above start_bytes, on a CPU the peak RSS
    kind: str  # "cuda max allocated above start", "process peak RSS, VmHWM reset before", ...
    reserved_bytes: int | None = None  # CUDA caching allocator's reserved peak, above its start
    start_bytes: int | None = None  # CUDA: allocated when the measurement started (other builds' too);
    # CPU: the process's resident set then (so the calls' own rise is bytes - start_bytes)
    reserved_start_bytes: int | None = None  # CUDA: reserved when the measurement started

    def as_dict(self) -> dict:
        return asdict(self)


CUDA_PEAK_KIND = "cuda max allocated above start"


def cuda_peak_rise(start_allocated: int, peak_allocated: int, start_reserved: int,
                   peak_reserved: int) -> PeakMemory:
    """A build's own CUDA peak: how far the peaks rose above what was allocated (reserved) when its
    measurement started.  The peaks are reset at that start, so they are never below it."""
    return PeakMemory(max(peak_allocated - start_allocated, 0), CUDA_PEAK_KIND,
                      max(peak_reserved - start_reserved, 0), start_allocated, start_reserved)


class _StepClock:
    def __init__(self, synchronize):
        self.synchronize = synchronize
        self.start = 0.0
        self.marks: list[float] = []
        self.prompt_tokens = 0

    def wrap(self, forward):
        @functools.wraps(forward)
        def clocked(*args, **kwargs):
            output = forward(*args, **kwargs)
            self.synchronize()
            if not self.marks:
                ids = kwargs.get("decoder_input_ids")
                self.prompt_tokens = int(ids.shape[-1]) if ids is not None else 0
            self.marks.append(time.perf_counter())
            return output

        return clocked


class _MemoryPeak:
    """Context manager: the peak memory of what runs inside it."""

    def __init__(self, hardware):
        self.hardware = hardware
        self.result: PeakMemory | None = None
        self._reset = False
        self._start = (0, 0)  # CUDA: (allocated, reserved) at __enter__

    def __enter__(self):
        if self.hardware.is_cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = (torch.cuda.memory_allocated(), torch.cuda.memory_reserved())
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
                self._reset = True
            except OSError:
                self._reset = False
            self._start = (_proc_status_bytes("VmRSS:"), 0)
        return self

    def __exit__(self, *exc):
        if self.hardware.is_cuda:
            torch.cuda.synchronize()
            allocated, reserved = self._start
            self.result = cuda_peak_rise(allocated, torch.cuda.max_memory_allocated(), reserved,
                                         torch.cuda.max_memory_reserved())
            return False
        peak = _proc_status_bytes("VmHWM:")
        if peak is not None:
            kind = "process peak RSS, VmHWM reset before" if self._reset else "process peak RSS since start"
            # start: what the process held before these calls (weights, libraries the build loads)
            self.result = PeakMemory(peak, kind, start_bytes=self._start[0] if self._reset else None)
        else:
            import resource

            self.result = PeakMemory(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                                     "process peak RSS since start, ru_maxrss")
        return False


def _proc_status_bytes(field: str) -> int | None:
    """A memory figure of /proc/self/status ("VmHWM:", "VmRSS:") in bytes; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def measure_phases(variant, utterances, encoder_calls: int = 2) -> tuple[PhaseTimes, PeakMemory]:
    """Diagnostic calls of ``variant`` over ``utterances``: its phase times and peak memory."""
    from ..build.variants import synchronize

    clock = _StepClock(lambda: synchronize(variant.hardware))
    model = variant.model
    original = model.forward
    first, per_token, steps, encoder, prompt = [], [], [], [], 0
    with _MemoryPeak(variant.hardware) as memory:
        model.forward = clock.wrap(original)
        try:
            for utterance in utterances:
                inputs = variant.inputs(utterance)
                clock.marks = []
                synchronize(variant.hardware)
                clock.start = time.perf_counter()
                variant.run(inputs)
                if clock.marks:
                    first.append(clock.marks[0] - clock.start)
                    steps.append(len(clock.marks))
                    prompt = clock.prompt_tokens
                    per_token += [b - a for a, b in zip(clock.marks, clock.marks[1:])]
        finally:
            model.forward = original
        if not variant.spec.long_form:
            features = variant.inputs(utterances[0])
            encode = model.get_encoder()
            with torch.inference_mode(), variant._attention():
                for _ in range(encoder_calls):
                    synchronize(variant.hardware)
                    start = time.perf_counter()
                    encode(features)
                    synchronize(variant.hardware)
                    encoder.append(time.perf_counter() - start)
    ms = lambda values: 1e3 * statistics.median(values) if values else float("nan")  # noqa: E731
    phases = PhaseTimes(encoder_ms=ms(encoder), first_token_ms=ms(first),
                        per_token_ms=ms(per_token) if per_token else None,
                        steps=statistics.median(steps) if steps else 0.0, prompt_tokens=prompt,
                        calls=len(utterances))
    return phases, memory.result

"""A deliberate, measured slowdown of a compiled variant, to check that verdicts catch one.

``--inject-slowdown 0.15`` makes each ``generate()`` of a compiled variant take 15% longer, as
extra work inside the compiled ``forward``: after every decode step it busy-waits for 15% of the
time spent since the previous step ended (the first step also accounts for the encoder, which
runs before it, outside ``forward``).  The slowdown is spread over the decode steps like a slower
kernel's, on the same cores, and the whole call is slowed by the fraction asked for, not by
less (the encoder is not compiled, so slowing ``forward`` alone would dilute it).

``--inject-on device`` (CUDA only) slows the GPU's work instead, for the device-time check:
after every decode step one extra kernel, ``torch.cuda._sleep`` (a spin of a given number of GPU
clock cycles), as long as ``fraction`` of a step's device time.  That time is measured once, in
the build's warm-up (the first 8 held steps after step 8, past compilation and CUDA-graph
recording; their median): a
spin queued ahead holds the stream while the host queues the step, so CUDA events around the
step time its GPU work back to back, without the host's launch gaps (on a host-bound step, event
times around an unheld step are mostly gaps, and a slowdown sized from them would be several
times the fraction asked for).  The cycles per millisecond of the spin are measured once, when
the slowdown is made.

It is refused unless ``WHISPER_PERF_SENSITIVITY_CHECK=1`` is set as well, so that it cannot be
switched on by accident, and it cannot be combined with ``--record``.
"""

from __future__ import annotations

import functools
import os
import statistics
import time

from ..errors import UsageError

ENABLE = "WHISPER_PERF_SENSITIVITY_CHECK"


def check_allowed(fraction: float, on: str = "host", device: str = "auto") -> None:
    if not fraction:
        return
    if on == "device" and device == "cpu":
        raise UsageError(_DEVICE_ONLY.format(device="cpu (--device cpu)"))
    if os.environ.get(ENABLE) != "1":
        raise UsageError(f"--inject-slowdown makes compiled variants slower on purpose; it is refused unless "
                         f"{ENABLE}=1 is set in the environment too.")
    if not 0 < fraction <= 5:
        raise UsageError(f"--inject-slowdown must be in (0, 5], not {fraction}")


class Slowdown:
    """``start()`` at the beginning of each timed call; ``wrap(forward)`` the compiled forward."""

    def __init__(self, fraction: float, synchronize):
        self.fraction = fraction
        self.synchronize = synchronize
        self.mark = time.perf_counter()

    def start(self) -> None:
        self.mark = time.perf_counter()

    def settle(self) -> None:
        pass

    def evidence(self) -> dict:
        return {}

    def wrap(self, forward):
        @functools.wraps(forward)
        def slow_forward(*args, **kwargs):
            output = forward(*args, **kwargs)
            self.synchronize()
            now = time.perf_counter()
            until = now + (now - self.mark) * self.fraction
            while time.perf_counter() < until:
                pass
            self.mark = until
            return output

        return slow_forward


class DeviceSlowdown:
    """``--inject-on device``: the same interface as Slowdown; the slowdown is GPU work."""

    SKIPPED_STEPS, MEASURED_STEPS = 8, 8  # past compilation and CUDA-graph recording, then a median
    HOLD_MS, MAX_HOLD_MS = 50.0, 1000.0  # the spin that holds the stream while the host queues a step

    def __init__(self, fraction: float, cuda=None):
        import torch

        self.cuda, self.fraction = cuda or torch.cuda, fraction  # cuda: torch.cuda (a stand-in where no GPU is)
        self.cycles_per_ms = self._spin_rate()
        self.hold_ms = self.HOLD_MS
        self.steps = 0
        self.measured: list[float] = []  # device ms of the measured steps
        self.step_ms: float | None = None
        self.gaps_included = False

    def _spin_rate(self) -> float:
        """Cycles of ``torch.cuda._sleep`` per millisecond on this GPU, measured."""
        cuda, cycles = self.cuda, 10_000_000
        cuda._sleep(cycles)  # the first launch loads the kernel
        start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        start.record()
        cuda._sleep(cycles)
        end.record()
        end.synchronize()
        return cycles / max(start.elapsed_time(end), 1e-3)

    def start(self) -> None:
        pass

    def settle(self) -> None:
        """After the build's warm-up: the step time from the steps measured so far, so that no held
        step falls into a timed call (a warm-up of fewer than 16 steps measures fewer than 8)."""
        if self.step_ms is None and not self.measured:
            raise RuntimeError(f"--inject-on device: the warm-up ran {self.steps} decode step(s), and none past the "
                               f"first {self.SKIPPED_STEPS} could be timed; give a larger --max-new-tokens")
        if self.step_ms is None:
            self.step_ms = statistics.median(self.measured)

    def evidence(self) -> dict:
        """What the slowdown was sized from, for the results file: the device time of a decode step's
        ``forward``, with the stream held (the profiler's device busy per call also holds the encoder
        and what generate() runs between steps, which this slowdown leaves alone)."""
        return {"step_device_ms": self.step_ms, "step_device_ms_measured": self.measured, "hold_ms": self.hold_ms,
                "step_gaps_included": self.gaps_included}

    def _held_step(self, forward, args, kwargs):
        """One step with the stream held until the host has queued it: (output, its device ms or
        None when the host took longer than the hold, which then doubles for the next try).  At the
        longest hold the time is kept anyway, and ``gaps_included`` says so: a step that waits for
        the GPU inside ``forward`` cannot be held, and its events time the gaps too."""
        cuda = self.cuda
        start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        queued = time.perf_counter()
        cuda._sleep(int(self.hold_ms * self.cycles_per_ms))
        start.record()
        output = forward(*args, **kwargs)
        end.record()
        covered = (time.perf_counter() - queued) * 1000 < self.hold_ms
        end.synchronize()
        if covered or self.hold_ms >= self.MAX_HOLD_MS:
            self.gaps_included |= not covered
            return output, start.elapsed_time(end)
        self.hold_ms = min(2 * self.hold_ms, self.MAX_HOLD_MS)
        return output, None

    def wrap(self, forward):
        @functools.wraps(forward)
        def slow_forward(*args, **kwargs):
            self.steps += 1
            if self.step_ms is None:
                if self.steps <= self.SKIPPED_STEPS:
                    return forward(*args, **kwargs)
                output, ms = self._held_step(forward, args, kwargs)
                self.measured += [ms] if ms is not None else []
                if len(self.measured) == self.MEASURED_STEPS:
                    self.step_ms = statistics.median(self.measured)
                return output
            output = forward(*args, **kwargs)
            self.cuda._sleep(int(self.fraction * self.step_ms * self.cycles_per_ms))
            return output

        return slow_forward


_DEVICE_ONLY = ("--inject-on device slows the GPU's own work and needs a CUDA device; this run is on {device}. "
                "Use --inject-on host (the default) here")


def make_slowdown(fraction: float, on: str, hardware, synchronize):
    """The slowdown ``--inject-on`` asks for: host-side (Slowdown) or on the GPU (DeviceSlowdown)."""
    if on == "device":
        if not hardware.is_cuda:
            raise UsageError(_DEVICE_ONLY.format(device=hardware.device))
        return DeviceSlowdown(fraction)
    return Slowdown(fraction, synchronize)

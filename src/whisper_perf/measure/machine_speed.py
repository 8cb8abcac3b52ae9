"""How fast is this machine right now?  A tiny fixed workload that does not use torch, timed
before every timed ``generate()`` call.

Absolute times (compiled seconds, eager seconds) are compared with a baseline recorded hours or
weeks earlier, and a cloud VM does not keep one speed.  Measured on the 2-core development VM
with nothing else running: the speed of the same work swings by half within seconds and drifts
by a third over half an hour.  The speedup is immune (eager and compiled are timed seconds
apart); absolute times are not.  So every timed call is preceded by this probe (a memory-bound
numpy pass, like decoding, which streams weights, and a pure-Python loop, like ``generate()``'s
own loop; about 5 ms), and a measurement keeps the probe's mean.  Interleaved this way it tracks
torch's speed closely: over 40 s of alternating probe and a small eager torch model, their
correlation was 0.85 per call and 0.97 per block of 20 calls, and both slowed by about half
together.  Neither part touches torch, so a torch or transformers upgrade cannot move it.

The time checks therefore compare machine-speed-adjusted times: this run's seconds scaled by
``baseline probe / this run's probe``.  Beyond ``MAX_ADJUSTMENT`` the adjustment is not trusted
and the time checks say "unreliable: machine speed changed" with both probe times.  On CUDA the
timed work runs on the GPU, which this probe does not see: it is kept as evidence only.
"""

from __future__ import annotations

import time

import numpy as np

# A speed change larger than this between the recording and this run is not adjusted for: the
# probe tracked torch 1:1 over swings of about 50% here, but further out that is not known.
MAX_ADJUSTMENT = 0.30

_ELEMENTS = 1_000_000  # 4 MB of float32, beyond the L2 cache, like a layer's weights
_PYTHON_STEPS = 50_000
_BUFFERS: tuple[np.ndarray, np.ndarray] | None = None


def probe_ms() -> float:
    """Milliseconds of the fixed workload (about 5 ms on the development VM)."""
    global _BUFFERS
    if _BUFFERS is None:  # allocated and touched once, so page faults are not timed
        _BUFFERS = (np.full(_ELEMENTS, 0.5, dtype=np.float32), np.zeros(_ELEMENTS, dtype=np.float32))
    buffer, out = _BUFFERS
    begin = time.perf_counter()
    for _ in range(4):
        np.multiply(buffer, 1.0001, out=out)
        np.add(out, buffer, out=out)
    total = 0
    for i in range(_PYTHON_STEPS):
        total += i * i
    return 1000 * (time.perf_counter() - begin)


def adjustment(now_ms: float | None, baseline_ms: float | None) -> tuple[float | None, str | None]:
    """(factor, why not) for comparing this run's times with the baseline's: multiply this run's
    seconds by ``factor`` (baseline probe / this run's probe).  ``(None, None)``: no probe on one
    side, compare as measured.  ``(None, reason)``: the speed moved too far to adjust for."""
    if not now_ms or not baseline_ms:
        return None, None
    ratio = now_ms / baseline_ms
    if abs(ratio - 1) > MAX_ADJUSTMENT:
        direction = "slower" if ratio > 1 else "faster"
        return None, (f"machine speed changed: a fixed torch-independent workload took {now_ms:.2f} ms in this run, "
                      f"{baseline_ms:.2f} ms when the baseline was recorded ({abs(ratio - 1):.0%} {direction}, "
                      f"more than the {MAX_ADJUSTMENT:.0%} the time checks adjust for), so absolute times are not "
                      f"comparable; the speedup (eager and compiled timed side by side) still is. Run again when "
                      f"the machine is steady, or re-record the baseline here")
    return baseline_ms / now_ms, None

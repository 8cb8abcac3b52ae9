"""How fast is this machine right now?  A small fixed workload that does not use torch.

Absolute times (compiled seconds, eager seconds) are compared with a baseline recorded hours or
weeks earlier.  A cloud VM does not keep one speed: measured on the 2-core development VM, the
same build took a third longer for half an hour while nothing else ran on it (the hypervisor's
neighbours, frequency).  The speedup is immune (eager and compiled are timed seconds apart), the
absolute times are not.  So every timed round also times this probe: a memory-bound numpy pass
(like decoding, which streams weights) and a pure-Python loop (like ``generate()``'s own loop).
Neither touches torch, so a torch or transformers upgrade cannot move it; when it moved between
the recording and this run, the machine changed speed, and the time checks say "unreliable:
machine speed changed" with both probe times instead of raising a false alarm or hiding a true
one.  On CUDA the timed work runs on the GPU, which this probe does not see: it is kept as
evidence only.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

# The probe moving by more than this since the baseline was recorded makes absolute times
# incomparable.  Its own run-to-run spread on the development VM, idle: about 3% (median of 5).
MACHINE_SPEED_TOLERANCE = 0.10

_ELEMENTS = 4_000_000  # 16 MB of float32: well beyond the caches, like a model's weights
_PYTHON_STEPS = 200_000
_REPEATS = 5


def _once(buffer: np.ndarray, out: np.ndarray) -> float:
    begin = time.perf_counter()
    for _ in range(4):
        np.multiply(buffer, 1.0001, out=out)
        np.add(out, buffer, out=out)
    total = 0
    for i in range(_PYTHON_STEPS):
        total += i * i
    return time.perf_counter() - begin


def probe_ms() -> float:
    """Milliseconds of the fixed workload: the median of a few repeats (about 0.15 s in all)."""
    buffer = np.full(_ELEMENTS, 0.5, dtype=np.float32)
    out = np.empty_like(buffer)
    return 1000 * statistics.median(_once(buffer, out) for _ in range(_REPEATS))


def changed(now_ms: float | None, baseline_ms: float | None,
            tolerance: float = MACHINE_SPEED_TOLERANCE) -> str | None:
    """Why absolute times of this run cannot be compared with the baseline's, or None."""
    if not now_ms or not baseline_ms:
        return None
    ratio = now_ms / baseline_ms
    if abs(ratio - 1) <= tolerance:
        return None
    direction = "slower" if ratio > 1 else "faster"
    return (f"machine speed changed: a fixed torch-independent workload took {now_ms:.1f} ms in this run, "
            f"{baseline_ms:.1f} ms when the baseline was recorded ({abs(ratio - 1):.0%} {direction}, more than "
            f"{tolerance:.0%}), so absolute times are not comparable; the speedup (eager and compiled timed "
            f"side by side) still is. Run again when the machine is steady, or re-record the baseline here")

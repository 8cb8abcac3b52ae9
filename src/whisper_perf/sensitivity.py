"""A deliberate, measured slowdown of a compiled variant, to check that verdicts catch one.

``--inject-slowdown 0.15`` makes every call of the compiled ``forward`` (each decode step) take
15% longer, by busy-waiting after it for 15% of the time it took: extra work on the same cores,
as a slower kernel would cost.  The encoder runs outside ``forward`` and is not slowed, so the
whole ``generate()`` slows by somewhat less than the fraction.  It is refused unless
``WHISPER_PERF_SENSITIVITY_CHECK=1`` is set as well, so that it cannot be switched on by accident.
"""

from __future__ import annotations

import functools
import os
import time

from .errors import UsageError

ENABLE = "WHISPER_PERF_SENSITIVITY_CHECK"


def check_allowed(fraction: float) -> None:
    if not fraction:
        return
    if os.environ.get(ENABLE) != "1":
        raise UsageError(f"--inject-slowdown makes compiled variants slower on purpose; it is refused unless "
                         f"{ENABLE}=1 is set in the environment too.")
    if not 0 < fraction <= 5:
        raise UsageError(f"--inject-slowdown must be in (0, 5], not {fraction}")


def slowed(forward, fraction: float, synchronize):
    """``forward``, taking ``1 + fraction`` times as long per call."""

    @functools.wraps(forward)
    def slow_forward(*args, **kwargs):
        start = time.perf_counter()
        output = forward(*args, **kwargs)
        synchronize()
        until = start + (time.perf_counter() - start) * (1 + fraction)
        while time.perf_counter() < until:
            pass
        return output

    return slow_forward

"""A deliberate, measured slowdown of a compiled variant, to check that verdicts catch one.

``--inject-slowdown 0.15`` makes each ``generate()`` of a compiled variant take 15% longer, as
extra work inside the compiled ``forward``: after every decode step it busy-waits for 15% of the
time spent since the previous step ended (the first step also accounts for the encoder, which
runs before it, outside ``forward``).  The slowdown is spread over the decode steps like a slower
kernel's, on the same cores, and the whole call is slowed by the fraction asked for, not by
less (the encoder is not compiled, so slowing ``forward`` alone would dilute it).

It is refused unless ``WHISPER_PERF_SENSITIVITY_CHECK=1`` is set as well, so that it cannot be
switched on by accident, and it cannot be combined with ``--record``.
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


class Slowdown:
    """``start()`` at the beginning of each timed call; ``wrap(forward)`` the compiled forward."""

    def __init__(self, fraction: float, synchronize):
        self.fraction = fraction
        self.synchronize = synchronize
        self.mark = time.perf_counter()

    def start(self) -> None:
        self.mark = time.perf_counter()

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

"""The search of a bisection: which version between a good and a bad one first went bad.

Pure: it knows versions only as positions in a list ordered from the good end to the bad end, and
asks an oracle (commands/bisect.py: the suite's side-by-side comparison) for each probe's state:

- good / bad: the probe's measured change lies credibly within / beyond the tolerance;
- inconclusive: its interval straddles the tolerance.  ``measure_until_decided`` measures again,
  up to a budget of repeats, and never guesses; a probe still inconclusive is stepped around;
- skipped: the version could not be installed, or the suite could not run in it; stepped around
  as ``git bisect skip`` does: the search goes on with the untested version nearest the middle.

The bad end is probed first (against the good end): a range that shows no regression stops
there.  When versions next to the boundary could not be decided, the result names every
candidate for the first bad version instead of picking one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Callable


class State(str, Enum):
    GOOD = "good"
    BAD = "bad"
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"

    @property
    def decided(self) -> bool:
        return self in (State.GOOD, State.BAD)


@dataclass
class Probe:
    """One version's answer: its state, what was measured (the change against the good end, as
    an interval dict, when the criterion is a measure) and how often."""

    version: str
    state: State
    detail: str = ""
    change: dict | None = None  # stats.Interval.as_dict() of the change, when measured
    repeats: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"version": self.version, "state": self.state.value, "detail": self.detail, "change": self.change,
                "repeats": self.repeats, "seconds": round(self.seconds, 1)}


@dataclass
class Outcome:
    versions: list[str]  # from the good end to the bad end
    probes: list[Probe] = field(default_factory=list)  # in the order they ran
    last_good: str | None = None
    first_bad: str | None = None
    candidates: list[str] = field(default_factory=list)  # when undecided: where the first bad may be

    @property
    def verdict(self) -> str:
        """"found", "no regression" (the bad end measured good) or "undecided"."""
        if self.first_bad is not None and not self.candidates:
            return "found"
        return "no regression" if self.probes and self.probes[0].state == State.GOOD else "undecided"


def measure_until_decided(measure: Callable[[int], Probe], max_repeats: int) -> Probe:
    """``measure(repeat)`` measures once more (repeat 1, 2, ...: each adds to the ones before)
    and says what all of them show; again while inconclusive, up to ``max_repeats``."""
    probe = measure(1)
    while probe.state == State.INCONCLUSIVE and probe.repeats < max_repeats:
        probe = measure(probe.repeats + 1)
    return probe


def _next(low: int, high: int, undecidable: set[int]) -> int | None:
    """The untested position between ``low`` and ``high`` nearest their middle (the later one of
    two as near), or None when every position between them has been tried."""
    left = [i for i in range(low + 1, high) if i not in undecidable]
    middle = (low + high) / 2
    return min(left, key=lambda i: (abs(i - middle), -i)) if left else None


def search(versions: list[str], oracle: Callable[[str], Probe], check_good_end: bool = False) -> Outcome:
    """Bisect ``versions`` (good end first, bad end last) with ``oracle``.

    ``check_good_end``: probe the good end too (a failure criterion, where each version is judged
    alone; a measured change of the good end against itself would be 1 by construction)."""
    outcome = Outcome(list(versions))
    ends = [len(versions) - 1] + ([0] if check_good_end else [])
    for position, expected in zip(ends, (State.BAD, State.GOOD)):
        probe = oracle(versions[position])
        outcome.probes.append(probe)
        if probe.state != expected:
            return outcome  # a range that shows no regression, or an end that could not be decided
    low, high, undecidable = 0, len(versions) - 1, set()
    while (position := _next(low, high, undecidable)) is not None:
        probe = oracle(versions[position])
        outcome.probes.append(probe)
        if probe.state == State.GOOD:
            low = position
        elif probe.state == State.BAD:
            high = position
        else:
            undecidable.add(position)
    outcome.last_good, outcome.first_bad = versions[low], versions[high]
    between = [versions[i] for i in range(low + 1, high)]  # all undecidable, or none
    outcome.candidates = between + [versions[high]] if between else []
    return outcome

"""--detect's stopping rule, which the judge hands to the measuring (measure.timing.measure): when
to look (the looks of the sequential intervals), what each look must reach (each speed check's
detectable slowdown against its target), and what the run says of where it stopped.  The
measuring asks the rule; it never asks the judge itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import sequential
from .stats import percent_text
from .verdicts import adaptive_target


@dataclass(frozen=True)
class Adaptive:
    """Time more rounds until each speed check of the variant could detect ``detect``
    (``detectable(m)``: each check's smallest flagged slowdown now, verdicts.detectable_by_check),
    or the budget ends.  ``floors`` is what the tolerances alone let each check through: a
    ``detect`` near or below a check's floor cannot be reached by any number of rounds, so that
    check is driven to verdicts.adaptive_target instead."""

    detect: float
    budget_seconds: float
    detectable: Callable[[object], dict[str, float]]  # a measure.timing.Measurement -> check -> slowdown
    floors: dict[str, float]
    max_rounds: int = sequential.LOOKS[-1]

    def target(self, check: str) -> float:
        return adaptive_target(self.detect, self.floors.get(check, 0.0))

    def met(self, found: dict[str, float]) -> bool:
        return all(value <= self.target(check) for check, value in found.items())

    @property
    def floor(self) -> float:
        return max(self.floors.values(), default=0.0)

    @property
    def tolerance_bound(self) -> bool:
        """Whether a check's tolerance moved its target above ``detect`` (adaptive_target)."""
        return any(self.target(check) > self.detect for check in self.floors)

    @staticmethod
    def last_look(quiet_rounds: int) -> int:
        return sequential.last_look(quiet_rounds)

    def at_look(self, quiet_rounds: int) -> bool:
        return self.last_look(quiet_rounds) == quiet_rounds

    def note(self, quiet_rounds: int, found: dict | None, why: str | None, seconds: float) -> str:
        """What the run says of its adaptive rounds: what it would detect, what was asked, why it stopped."""
        asked = f"asked for {percent_text(self.detect)}"
        if found is None:  # judged as a fixed number of rounds: nothing was decided by looking
            return f"{asked}: no look reached ({quiet_rounds} quiet rounds{f'; {why}' if why else ''})"
        reached = max(found.values())
        checks = ", ".join(f"{check} {percent_text(value)}" for check, value in found.items())
        done = f"after {self.last_look(quiet_rounds)} rounds, {seconds / 60:.1f} min"
        said = f"would detect a slowdown of {percent_text(reached)} ({checks}), {asked}"
        if reached <= self.detect:
            return f"{said}: reached {done}"
        floor = (f"the tolerances alone let {percent_text(self.floor)} through, which no number of rounds can "
                 "change (narrow them with nox -s calibrate)") if self.tolerance_bound else None
        if self.met(found):
            return f"{said}: {floor}; the noise adds at most half of {percent_text(self.detect)} to them ({done})"
        return f"{said}: {why}{f'; {floor}' if floor else ''} ({done})"

"""Is the machine busy?  CPU time of *other* processes while the suite times a pass.

On a shared CPU, other processes competing for the cores distort timings, and not evenly:
compiled code's OpenMP threads suffer more from oversubscribed cores than eager code does, so a
busy machine can look exactly like a compile regression.  The suite therefore measures, around
every timed pass, how much CPU the rest of the machine used (machine-wide CPU time from
``/proc/stat`` minus this process's own CPU time) and how much the hypervisor stole, and marks a
pass taken on a busy machine.  Such passes are not used for verdicts; a measurement left with too
few quiet passes is judged "unreliable: machine busy", with this evidence, instead of raising a
false alarm.

On CUDA the timed work runs on the GPU; the same accounting is kept (host contention still
delays kernel launches) but it is evidence only.  Without ``/proc/stat`` (macOS, Windows) the
1-minute load average is reported and no pass is marked.

``--busy-threshold`` sets the cores other processes may use before a pass counts as busy
(default ``OTHERS_BUSY_CORES``); ``off`` marks no pass busy, for runs whose subject is not the
speed verdicts (the harness's own plumbing tests, a smoke run on a shared CI runner).  The load is
still measured and kept in the results file either way, with the threshold that applied.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from ..errors import UsageError

# Other processes using more than this many cores on average during a pass make it "busy".
# Idle, this machine's background (shell, logging) stays below 0.05 cores.
OTHERS_BUSY_CORES = 0.25
# Quiet rounds an interval needs: fewer, and a busy run's timings are not judged (summary.summarize).
MIN_QUIET_ROUNDS = 2
# The hypervisor giving more than this share of our CPUs to other guests does the same.
STEAL_BUSY_FRACTION = 0.10

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_busy_threshold(text: str) -> float | None:
    """``--busy-threshold``: a number of cores (0 or more), or ``off`` (None)."""
    if text.strip().lower() == "off":
        return None
    try:
        cores = float(text)
    except ValueError:
        cores = -1.0
    if not 0 <= cores < float("inf"):
        raise UsageError(f"--busy-threshold is the cores other processes may use before a timed round counts as busy "
                         f"(a number such as {OTHERS_BUSY_CORES}) or 'off', not {text!r}")
    return cores


def _machine_jiffies() -> tuple[int, int] | None:
    """(busy, steal) clock ticks of all CPUs since boot, or None where /proc/stat is absent."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    values = [int(v) for v in fields[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return user + nice + system + irq + softirq, steal


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class Load:
    """CPU use around one timed pass."""

    wall_seconds: float
    own_cores: float  # this process's CPU seconds / wall seconds
    others_cores: float | None  # other processes' CPU seconds / wall seconds (None: unknown)
    steal_fraction: float | None  # share of this machine's CPU time taken by the hypervisor
    load_average: float | None  # 1-minute load average at the end
    busy_cores: float | None = OTHERS_BUSY_CORES  # the --busy-threshold that applied; None: off

    @property
    def busy(self) -> bool:
        if self.busy_cores is None:
            return False
        return ((self.others_cores or 0.0) > self.busy_cores
                or (self.steal_fraction or 0.0) > STEAL_BUSY_FRACTION)

    def evidence(self) -> str:
        parts = []
        if self.others_cores is not None:
            parts.append(f"other processes used {self.others_cores:.2f} cores")
        if self.steal_fraction is not None and self.steal_fraction > 0.005:
            parts.append(f"hypervisor stole {self.steal_fraction:.0%}")
        if self.load_average is not None:
            parts.append(f"load average {self.load_average:.2f}")
        parts.append(f"this process used {self.own_cores:.2f} cores")
        return ", ".join(parts)

    def as_dict(self) -> dict:
        return {**asdict(self), "busy": self.busy}


class LoadMeter:
    """``with LoadMeter(busy_cores) as meter: ...`` then ``meter.load``."""

    load: Load | None = None

    def __init__(self, busy_cores: float | None = OTHERS_BUSY_CORES):
        self.busy_cores = busy_cores

    def __enter__(self) -> "LoadMeter":
        self._machine = _machine_jiffies()
        self._own = _own_cpu_seconds()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        wall = max(time.perf_counter() - self._start, 1e-9)
        own = _own_cpu_seconds() - self._own
        machine = _machine_jiffies()
        others = steal = None
        if machine is not None and self._machine is not None:
            busy_ticks = machine[0] - self._machine[0]
            others = max(busy_ticks / _TICK - own, 0.0) / wall
            cpus = os.cpu_count() or 1
            steal = (machine[1] - self._machine[1]) / _TICK / (wall * cpus)
        try:
            load_average = os.getloadavg()[0]
        except (AttributeError, OSError):
            load_average = None
        self.load = Load(wall, own / wall, others, steal, load_average, self.busy_cores)


def sample_idle(seconds: float = 1.0, busy_cores: float | None = OTHERS_BUSY_CORES) -> Load:
    """The machine's load while this process sleeps: a check before any timing starts."""
    with LoadMeter(busy_cores) as meter:
        time.sleep(seconds)
    return meter.load

"""``whisper-perf record --processes N``: this hardware's baseline from N recording processes.

A recording is one process's measurement, and separate processes differ.  On the 2-core AMD host
the compiled speedup of separate runs spread with a CV of 2.1%
(docs/measurements/cpu-x86_64-avx512-amd-epyc-t2/calibration-20261203), and an entry one process
recorded (compiled-static, 1.137x) sat above all six default runs measured there later
(1.05-1.09x, docs/measurements/README.md): half of them flagged a regression that was the entry's
own error.  So a recording runs the suite N times (default 3), one process after another, each
into a scratch copy of the baseline folder, and keeps for each entry the recording of the process
with the median figure: the speedup of a compiled variant, the seconds of an eager one.  That is
one real process's entry, not an average no run measured; with N even, the upper median.  A
process that does not exit 0 leaves the baseline as it was.  ``--processes 1`` is one process,
the suite's own ``--record``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import EXIT_OK, UsageError
from ..judge import baselines
from ..judge.baselines import BaselineFile, Entry
from ..record import baseline_recording

DEFAULT_PROCESSES = 3

HELP = f"""usage: whisper-perf record [--processes N] [suite options]

Measure this hardware's baseline and write it to baselines/<key>.json (review it with git diff).

  --processes N   record in N suite processes, one after another, and keep for each entry the
                  recording with the median speedup (eager: the median seconds); default
                  {DEFAULT_PROCESSES}, 1 records in this process

The suite's options follow (pytest's help)."""


def processes_asked(args: list[str]) -> tuple[int, list[str]]:
    """``--processes N`` (or ``--processes=N``) taken out of ``args``: (N, the other arguments)."""
    value, rest = _option(args, "--processes")
    if value is None and "--processes" not in rest:
        return DEFAULT_PROCESSES, rest
    if value is None or not value.isdigit() or int(value) < 1:
        raise UsageError(f"--processes is the number of recording processes, a whole number of at least "
                         f"1, not {value or ''!r}: e.g. --processes 3")
    return int(value), rest


def median_index(figures: list[float]) -> int:
    """The position of the median of ``figures`` (the upper one of two): the recording kept."""
    return sorted(range(len(figures)), key=lambda i: (figures[i], i))[len(figures) // 2]


def _option(args: list[str], name: str) -> tuple[str | None, list[str]]:
    """The value of ``name`` in ``args`` and the arguments without it."""
    rest = list(args)
    for i, arg in enumerate(rest):
        if arg == name and i + 1 < len(rest):
            value = rest[i + 1]
            del rest[i:i + 2]
            return value, rest
        if arg.startswith(f"{name}="):
            del rest[i]
            return arg.partition("=")[2], rest
    return None, rest


def _recorded_file(scratch: Path, target: Path) -> Path | None:
    """The baseline file a recording process wrote or changed in its scratch copy of ``target``."""
    for path in sorted(scratch.glob("*.json")):
        before = target / path.name
        if not before.exists() or before.read_bytes() != path.read_bytes():
            return path
    return None


def _recorded_entries(recording: BaselineFile, target: BaselineFile | None) -> dict[tuple, Entry]:
    """The entries a recording added or changed, by (model, variant, protocol)."""
    def key(e: Entry) -> tuple:
        return e.model, e.variant, repr(sorted(e.protocol.items()))

    before = {key(e): e.as_dict() for e in (target.entries if target else [])}
    return {key(e): e for e in recording.entries if before.get(key(e)) != e.as_dict()}


def keep_medians(recordings: list[BaselineFile], target: BaselineFile | None, say) -> list[Entry]:
    """For each entry every recording wrote, the one with the median figure, its provenance
    saying which process of how many it came from and what the others measured."""
    recorded = [_recorded_entries(r, target) for r in recordings]
    kept = []
    for key in dict.fromkeys(k for r in recorded for k in r):  # every entry any process wrote, in order
        entries = [r[key] for r in recorded if key in r]
        first = entries[0]
        if len(entries) < len(recordings):
            say(f"{first.id}: recorded by {len(entries)} of {len(recordings)} processes: not kept")
            continue
        name, unit, figures = (("speedup", "x", [e.speedup for e in entries]) if first.speedup is not None
                               else ("seconds", " s", [e.seconds for e in entries]))
        index = median_index(figures)
        chosen = entries[index]
        chosen.provenance = {**chosen.provenance, "processes": {"kept": index + 1, "of": len(entries), name: figures}}
        shown = ", ".join(f"{f:.3f}{unit}" for f in figures)
        say(f"{first.id}: {name} {shown} in processes 1-{len(entries)}: keeping process {index + 1}'s "
            f"({figures[index]:.3f}{unit})")
        kept.append(chosen)
    return kept


def record_median(processes: int, args: list[str], record_once, say=print) -> int:
    """Record ``processes`` times with ``record_once(args)`` (a suite process's exit status), each
    into a scratch copy of the baseline folder, then write the median entries into the folder."""
    given, rest = _option(args, "--baselines")
    target = Path(given) if given else Path.cwd() / "baselines"
    with tempfile.TemporaryDirectory(prefix="whisper-perf-record-") as scratch_root:
        files = []
        for i in range(processes):
            scratch = Path(scratch_root) / str(i + 1)
            if target.is_dir():
                shutil.copytree(target, scratch)
            else:
                scratch.mkdir()
            say(f"recording {i + 1} of {processes}, into a scratch copy of {target} (the median is kept)")
            status = record_once([*rest, "--baselines", str(scratch)])
            written = _recorded_file(scratch, target)
            if status != EXIT_OK or written is None:
                say(f"Not recording: recording {i + 1} of {processes} "
                    f"{f'exited {status}' if status != EXIT_OK else 'wrote no baseline'} (see above); {target} is unchanged")
                return status if status != EXIT_OK else 1
            files.append(written)
        recordings = [baselines.load(path) for path in files]
        key, device_name = recordings[0].hardware_key, recordings[0].device_name
        existing = baselines.load_for(target, key)
        kept = keep_medians(recordings, existing, say)
        path, diff = baseline_recording.record(target, key, device_name, kept)
    say(f"Recorded baseline {path} (the median of {processes} processes)\n{diff}")
    return EXIT_OK


def record_in_subprocess(args: list[str]) -> int:
    """One recording process: ``whisper-perf record --processes 1`` with ``args``."""
    return subprocess.run([sys.executable, "-m", "whisper_perf", "record", "--processes", "1", *args]).returncode

"""A compiled variant built first in a fresh process, so that a build that kills the Python
interpreter fails that variant alone instead of the whole run (``--isolate-builds``).

Why: on an H100 with torch 2.11.0+cu130 and transformers 5.17.0, the published recipe
(``compiled-static``) dies with a segmentation fault in its warm-up, while torch records its CUDA
graphs.  In the suite's own process that took every variant of the run with it: no report, no
results file, nothing recorded.  A Python exception needs none of this (the in-process build
catches it and fails that variant only), so the fresh process (whisper_perf.build.coldstart's child: load,
compile and the full-budget warm-up, with the run's own compile caches, which the in-process build
then reuses) is judged only by how it ended: killed by a signal, or still running at the timeout,
fails the variant without building it here; anything else, and the variant is built here as usual.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from .coldstart import CHILD_TIMEOUT, child_command

FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+) in (?P<function>\S+)')


def crash_of_fresh_build(model: str, variant: str, device: str, audio: str | Path, max_new_tokens: int,
                         timeout: float = CHILD_TIMEOUT) -> str | None:
    """None when a fresh process built and warmed up ``variant`` without crashing; otherwise what
    ended it, and where (the innermost frames of its fault report)."""
    command = child_command(model, variant, device, audio, max_new_tokens)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"its build and warm-up had not finished after {timeout:.0f} s in a fresh process (hung?)"
    if proc.returncode >= 0:
        return None
    where = crash_site(proc.stderr)
    return (f"the process that built and warmed it up was killed by {signal_name(-proc.returncode)}"
            + (f" in {where}" if where else ""))


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def crash_site(fault_report: str, frames: int = 4) -> str:
    """'file.py:291 run <- file.py:2195 _run <- ...': the innermost frames of the crashing thread
    in a faulthandler report (``Current thread ... (most recent call first):``)."""
    lines = fault_report.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Current thread")), None)
    if start is None:
        return ""
    found = []
    for line in lines[start + 1:]:
        match = FRAME.match(line)
        if not match:
            break
        if not match["path"].startswith("<"):  # skip importlib's frozen frames
            found.append(f"{Path(match['path']).name}:{match['line']} {match['function']}")
    return " <- ".join(found[:frames])

"""The suite's commands beside the benchmark run, each ``whisper-perf <name>`` (cli.py):

record     the baseline from several recording processes, the median of each   (nox -s record)
calibrate  how often verdicts cry wolf here, how small a slowdown they catch   (nox -s calibrate)
upgrade    the suite in several environments, side by side                     (nox -s upgrade, matrix)
merge      results of many machines and runs in one report                     (nox -s merge)
history    the trend of each model x variant across runs, and where it stepped (nox -s history)
judge      a results file judged again, against the baseline as it is now      (nox -s judge)
bisect     the release where a change began, the suite as the oracle           (nox -s bisect)
batch-sweep  the batch size where larger batches stop paying here             (nox -s batch-sweep)

Each is split the same way: ``main`` reads the command line and runs or reads what is needed,
an analysis turns results files (results.RunResult) into data, and ``render`` turns that data
into Markdown.  Exit statuses come from errors.py, through ``run_command``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..errors import EXIT_ENVIRONMENT, EXIT_USAGE, EnvironmentUnavailable, UsageError


class Parser(argparse.ArgumentParser):
    """argparse whose complaint about the command line is a UsageError (exit 4, as for any
    usage error of the suite) instead of argparse's exit 2, which the suite's exit codes give
    to an interrupted run."""

    def error(self, message: str):
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def run_command(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """``main(argv)``'s exit status; a UsageError is exit 4 and an EnvironmentUnavailable exit 6,
    each told on stderr in one line of its kind and message, without a traceback."""
    try:
        return main(argv)
    except UsageError as exc:
        print(f"UsageError: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EnvironmentUnavailable as exc:
        print(f"EnvironmentUnavailable: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT

"""Error kinds the suite reports to its users; each maps to one exit code of the runner.

Exit codes of a run (``nox -s perf`` / ``pytest perf_tests``), stable for CI to branch on:

====  =========================================================================================
0     success: every judged check passed (checks that could not be judged are listed as skips)
1     regression: a performance or accuracy check failed
2     interrupted (Ctrl-C, SIGTERM)                                            (pytest's own)
3     internal error                                                           (pytest's own)
4     usage or configuration error: a bad option, a malformed baseline file     (pytest's own)
5     no tests collected                                                       (pytest's own)
6     environment error: a model, dataset or GPU the run needs is not available here, or a
      required package is missing or too old (whisper_perf.requirements)
7     not judged: with --strict-gate, nothing failed but a speed check could not be judged (no
      baseline, machine busy, machine speed changed): a release gate must not pass it; with
      --record, nothing failed but the machine was too busy to record (nothing written)
8     undecided (``nox -s bisect`` only): the search could not name the first bad version (a
      probe stayed inconclusive within its budget, or versions next to the boundary could not
      be installed or run); the report lists the candidates
====  =========================================================================================
"""

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_INTERRUPTED = 2  # pytest's own: Ctrl-C, SIGTERM
EXIT_USAGE = 4
EXIT_ENVIRONMENT = 6
EXIT_NOT_JUDGED = 7
EXIT_UNDECIDED = 8


class SuiteError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class UsageError(SuiteError):
    """A bad option, option combination or input file: fix the command line or the file."""


class EnvironmentUnavailable(SuiteError):
    """Something the run needs is not reachable here: a model, a dataset, a GPU."""

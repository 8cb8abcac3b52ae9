"""Error kinds the suite reports to its users; each maps to one exit code of the runner."""


class SuiteError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class UsageError(SuiteError):
    """A bad option, option combination or input file: fix the command line or the file."""


class EnvironmentUnavailable(SuiteError):
    """Something the run needs is not reachable here: a model, a dataset, a GPU."""

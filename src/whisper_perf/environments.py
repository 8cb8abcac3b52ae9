"""Virtual environments the suite installs and reuses: the one nox's sessions share
(noxfile.py), each environment of an upgrade comparison (commands/upgrade.py) and the overlays a
bisection probes (commands/bisect.py, ``prepare_overlay`` below).

An environment is asked for as requirement groups, each one ``pip install``'s arguments
("torch==2.13.0 --index-url ..."):

1. torch, installed first and alone, so that nothing after it resolves torch to another build;
2. the package's other pins, installed with this package in editable mode (code changes need
   no reinstall);
3. any further groups: extras on top (the tests' openai-whisper).

A prepared environment holds a marker, ``.whisper-perf-requirements``: the interpreter it was
made from, its groups and the sha256 of pyproject.toml.  When the marker shows that the
environment holds what is asked, nothing runs (a warm run skips pip, ~20 s); when only extras
are missing, only they are installed.

Standard library only: noxfile.py imports this under nox's own Python, which has no torch.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MARKER = ".whisper-perf-requirements"
BASE_GROUPS = 2  # torch, then the package with its pins: a change there reinstalls both


def python_in(folder: Path) -> Path:
    return Path(folder) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _pyproject_hash(root: Path) -> str:
    return hashlib.sha256((Path(root) / "pyproject.toml").read_bytes()).hexdigest()


@dataclass(frozen=True)
class State:
    """What an environment holds, as its marker says."""

    interpreter: str
    groups: tuple[str, ...]
    pyproject: str

    def text(self) -> str:
        return "\n".join([f"python {self.interpreter}", *self.groups, self.pyproject])

    @classmethod
    def read(cls, folder: Path) -> State | None:
        marker = Path(folder) / MARKER
        if not marker.exists() or not python_in(folder).exists():
            return None
        lines = marker.read_text().split("\n")
        if len(lines) < 2 or not lines[0].startswith("python "):
            return None  # an older marker: install again
        return cls(lines[0].removeprefix("python "), tuple(lines[1:-1]), lines[-1])


@dataclass(frozen=True)
class Plan:
    steps: list[list[str]]  # commands, in order; none: the environment holds what was asked
    state: State  # what the environment holds once they have run


def plan(folder: Path, groups: list[str], root: Path, interpreter: str = sys.executable) -> Plan:
    """The commands that make ``folder`` hold ``groups``, made from ``interpreter``."""
    folder, python = Path(folder), str(python_in(folder))
    wanted = State(interpreter, tuple(groups), _pyproject_hash(root))
    held = State.read(folder)
    pip = lambda *args: pip_install(python, *args)  # noqa: E731
    same_base = held is not None and (held.interpreter, held.pyproject, held.groups[:BASE_GROUPS]) == (
        wanted.interpreter, wanted.pyproject, wanted.groups[:BASE_GROUPS])
    if same_base:
        missing = [g for g in groups[BASE_GROUPS:] if g not in held.groups[BASE_GROUPS:]]
        steps = [pip(*g.split()) for g in missing]
        return Plan(steps + [byte_compile(python)] if steps else [], State(
            interpreter, held.groups + tuple(missing), wanted.pyproject))
    torch, package, *extras = list(groups) + [""] * (BASE_GROUPS - len(groups))
    fresh = held is None or held.interpreter != interpreter  # nothing to trust in it: start empty
    steps = [[interpreter, "-m", "venv", "--clear", str(folder)]] if fresh else []
    steps += [pip(*torch.split())] if torch.split() else []
    steps += [pip("-e", str(Path(root).resolve()), *package.split())]
    return Plan(steps + [pip(*g.split()) for g in extras] + [byte_compile(python)], wanted)


# pip byte-compiles what it installs on one core (torch alone: 15 of its 21 s here); installing
# with --no-compile and compiling the environment once, a worker per core, writes the same .pyc
# files sooner.  Like pip, it passes over a file that does not compile (compile_dir's result is
# ignored), and it skips what is already compiled; unlike pip, it leaves out the installed
# packages' own test suites (a quarter of the files: pandas', sympy's, numba's ...), which nothing
# here imports (Python compiles any file on its first import anyway).
BYTE_COMPILE = ("import compileall, re, sysconfig; "
                "compileall.compile_dir(sysconfig.get_paths()['purelib'], quiet=2, workers=0, "
                "rx=re.compile(r'[/\\\\]tests?[/\\\\]'))")


def byte_compile(python: str | Path) -> list[str]:
    """The command that byte-compiles the site-packages of ``python``'s environment."""
    return [str(python), "-c", BYTE_COMPILE]


def pip_install(python: str | Path, *args: str, runner: str | Path | None = None) -> list[str]:
    """pip's install command in ``python``'s environment, leaving the byte-compiling to byte_compile;
    with ``runner``, that interpreter's pip installs there (``pip --python``), so that ``python``'s
    environment needs no pip of its own."""
    if runner is None:
        return [str(python), "-m", "pip", "install", "--no-compile", *args]
    return [str(runner), "-m", "pip", "--python", str(python), "install", "--no-compile", *args]


def prepare(folder: Path, groups: list[str], root: Path, run: Callable[[list[str]], object],
            interpreter: str = sys.executable) -> Path:
    """Make ``folder`` hold ``groups`` (``run`` runs each command and raises when one fails), or
    find it holding them; its Python."""
    todo = plan(folder, groups, root, interpreter)
    marker = Path(folder) / MARKER
    if todo.steps:
        marker.unlink(missing_ok=True)  # a step that fails half-way leaves nothing to trust
    for step in todo.steps:
        run(step)
    if todo.steps:
        marker.write_text(todo.state.text())
    return python_in(folder)


def run_quietly(step: list[str]) -> None:
    """Run one command of a plan, its output kept back; RuntimeError with its last lines when it fails."""
    done = subprocess.run(step, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        errors = [line for line in lines if line.startswith("ERROR")]  # pip's reason, not its warnings
        tail = " | ".join(errors[-3:] or lines[-3:])
        raise RuntimeError(f"`{' '.join(step[2:])}` failed: {tail}")


OVERLAY_MARKER = ".whisper-perf-overlay"


def _site_packages(python: str | Path) -> str:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def prepare_overlay(folder: Path, requirement: str, root: Path, base_python: str,
                    run: Callable[[list[str]], object]) -> Path:
    """An environment that holds ``requirement`` (one pip argument list, e.g.
    "transformers==4.52.1") over everything ``base_python``'s environment holds, and its Python.

    A bisection installs a dozen versions of one package; a full environment each would install
    torch (2 GB) a dozen times.  The overlay is an empty venv whose ``.pth`` file adds the base
    environment's site-packages *after* its own (``site.addsitedir``, so the base's editable
    install of this package works too); pip installs the requirement, with this package's
    requirements so that every dependency is resolved against it (transformers 4.x needs an older huggingface-hub,
    which needs an older datasets), into the overlay, where it shadows the base's copy; pip leaves
    the base's own copy alone ("outside environment").  Reused when its marker shows the same
    base, requirement and pyproject.toml."""
    folder, python = Path(folder), python_in(folder)
    wanted = "\n".join([f"base {base_python}", requirement, _pyproject_hash(root)])
    marker = folder / OVERLAY_MARKER
    if marker.exists() and python.exists() and marker.read_text() == wanted:
        return python
    marker.unlink(missing_ok=True)  # a step that fails half-way leaves nothing to trust
    # no pip of its own (ensurepip takes seconds a probe): the base's pip installs into it
    run([base_python, "-m", "venv", "--clear", "--without-pip", str(folder)])
    shared = _site_packages(base_python)
    Path(_site_packages(python), "_whisper_perf_base.pth").write_text(f"import site; site.addsitedir({shared!r})\n")
    run(pip_install(python, *requirement.split(), *_dependencies(root), runner=base_python))
    run(byte_compile(python))
    marker.write_text(wanted)
    return python


def _dependencies(root: Path) -> list[str]:
    """This package's requirements, for pip to resolve beside an overlay's requirement (this
    package itself comes from the base: installing it again would build it, ~10 s a probe)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: install it again, which resolves the same
        return ["-e", str(Path(root).resolve())]
    return list(tomllib.loads((Path(root) / "pyproject.toml").read_text())["project"]["dependencies"])


def overlay_packages(python: str | Path) -> list[str]:
    """What an overlay installed itself ("tokenizers 0.21.4", ...): the requirement and the
    dependencies it needed in other versions than the base holds (pip and this package left out)."""
    found = []
    for info in sorted(Path(_site_packages(python)).glob("*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        if name.lower().replace("_", "-") not in ("pip", "whisper-perf", "setuptools"):
            found.append(f"{name} {version}")
    return found

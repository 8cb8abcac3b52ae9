"""How the suite writes files: never half-written, and an earlier run's file never overwritten.

Every file is written to a temporary name beside its target and flushed to disk first; then
``replace_atomically`` renames it over the target (a baseline: readers see the old file or the
new one), and ``write_new`` links it to the first free name (results, reports: ``os.link``
fails rather than replace an existing file).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UsageError


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def temporary_file(folder: Path, prefix: str) -> tuple[int, str]:
    """``mkstemp`` in ``folder`` named ``.<prefix>.<pid>.<random>.tmp``, after removing such files
    left by processes that no longer run (a writer killed with SIGKILL cannot clean up after
    itself; a live writer's file is never touched)."""
    for stale in Path(folder).glob(f".{prefix}.*.tmp"):
        try:
            pid = int(stale.name[len(prefix) + 2:].split(".", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            stale.unlink(missing_ok=True)
    return tempfile.mkstemp(prefix=f".{prefix}.{os.getpid()}.", suffix=".tmp", dir=folder)


def _written(folder: Path, prefix: str, text: str) -> str:
    """A temporary file in ``folder`` holding ``text``, on disk."""
    fd, tmp = temporary_file(folder, prefix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def replace_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step: a reader (or a crash) sees the old file or the new."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _written(path.parent, path.name, text)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_new(candidates, text: str) -> Path:
    """Write ``text`` under the first name of ``candidates`` (paths in one folder) that does not
    exist yet; never replaces a file."""
    candidates = iter(candidates)
    first = Path(next(candidates))
    first.parent.mkdir(parents=True, exist_ok=True)
    tmp = _written(first.parent, "new", text)
    try:
        for path in (first, *candidates):
            try:
                os.link(tmp, path)  # fails if the name exists
                return Path(path)
            except FileExistsError:
                continue
        raise FileExistsError(f"{first.parent}: no free name for {first.name}")
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_writable(folder: Path, option: str = "--results-dir") -> None:
    """Fail before any long work when results cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"{option} {folder}: cannot write there ({exc.strerror or exc}). "
                         f"Choose a writable folder with {option}.") from exc


def require_new_folder(path: Path, option: str = "--out") -> None:
    """A report folder must be new or empty: an earlier report is never overwritten."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{option} {path}: exists and is not an empty folder; choose a new folder "
                         "(an earlier report is never overwritten)")

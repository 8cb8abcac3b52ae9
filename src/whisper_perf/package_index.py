"""The released versions of a package, as the package index this machine installs from lists them.

A bisection searches the releases between two versions.  They are read from the same places pip
installs from (``pip config list``: ``index-url``, default PyPI, each ``extra-index-url`` and each
``find-links`` folder or page; or the one ``--index-url`` given), as PEP 503 "simple" pages:

- a version is listed when some file of it can be installed here: an sdist, or a wheel whose tags
  this Python supports (a torch release without a wheel for this Python is not a probe);
- a version whose every file is yanked (PEP 592, ``data-yanked``) is left out, as pip does for
  anything but an exact pin;
- pre-releases and development releases are left out unless asked for;
- local versions (``2.13.0+cpu``) count as their public version, which is what a probe pins.
"""

from __future__ import annotations

import html.parser
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import sys_tags
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name, parse_sdist_filename,
                             parse_wheel_filename)
from packaging.version import Version

from .errors import EnvironmentUnavailable

PYPI = "https://pypi.org/simple"
_SUPPORTED = frozenset(sys_tags())  # the wheel tags this Python installs


@dataclass(frozen=True)
class Sources:
    indexes: tuple[str, ...]  # simple-index base URLs
    find_links: tuple[str, ...]  # folders or pages listing files


def configured_sources(python: str = sys.executable) -> Sources:
    """Where ``python``'s pip installs from: its configuration, environment variables included."""
    out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True)
    values: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        option = key.rsplit(".", 1)[-1]
        values.setdefault(option, []).extend(value.strip().strip("'\"").split())
    index = values.get("index-url", [PYPI])[-1:]
    # a place set both in pip's configuration and in its environment is listed once
    return Sources(tuple(dict.fromkeys(index + values.get("extra-index-url", []))),
                   tuple(dict.fromkeys(values.get("find-links", []))))


class _Links(html.parser.HTMLParser):
    """The anchors of a simple page: (file name, yanked)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[tuple[str, bool]] = []
        self._href: str | None = None
        self._yanked = False

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "a":
            found = dict(attrs)
            self._href, self._yanked = found.get("href") or "", "data-yanked" in found

    def handle_endtag(self, tag) -> None:
        if tag == "a" and self._href is not None:
            name = urllib.parse.unquote(urllib.parse.urlsplit(self._href).path.rsplit("/", 1)[-1])
            self.files.append((name, self._yanked))
            self._href = None


def _read(url: str) -> str | None:
    """A page's text; a local folder's file names as anchors; None where there is none."""
    path = Path(urllib.parse.urlsplit(url).path) if url.startswith("file:") else Path(url) if "://" not in url else None
    if path is not None:
        if path.is_dir():
            index = path / "index.html"
            if index.exists():
                return index.read_text(encoding="utf-8", errors="replace")
            return "".join(f'<a href="{name}">{name}</a>' for name in sorted(os.listdir(path)))
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "text/html"}), timeout=60) as page:
            return page.read().decode("utf-8", errors="replace")
    except OSError:
        return None  # no such project there (404), or the index is out of reach


def _version_of(file_name: str, project: str) -> Version | None:
    """The version a distribution file holds, if it is ``project``'s and installable here."""
    try:
        if file_name.endswith(".whl"):
            name, version, _, tags = parse_wheel_filename(file_name)
            return version if name == project and not tags.isdisjoint(_SUPPORTED) else None
        if file_name.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(file_name)
            return version if name == project else None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None



def released_versions(package: str, sources: Sources, pre: bool = False) -> list[Version]:
    """Every version of ``package`` that ``sources`` list and this Python can install, oldest first."""
    project = canonicalize_name(package)
    pages = [f"{index.rstrip('/')}/{project}/" for index in sources.indexes] + list(sources.find_links)
    found: dict[Version, bool] = {}  # public version -> some file of it is not yanked
    read_any = False
    for page in pages:
        text = _read(page)
        if text is None:
            continue
        read_any = True
        links = _Links()
        links.feed(text)
        for name, yanked in links.files:
            version = _version_of(name, project)
            if version is not None:
                public = Version(version.public)
                found[public] = found.get(public, False) or not yanked
    if not read_any:
        raise EnvironmentUnavailable(f"no package index lists {package}: tried {', '.join(pages)}; "
                                     "pass --index-url URL, or configure pip's index-url")
    return sorted(v for v, installable in found.items() if installable and (pre or not (v.is_prerelease or v.is_devrelease)))


def between(versions: list[Version], first: Version, last: Version) -> list[Version]:
    """``first``, the versions strictly between, and ``last``: in order from ``first`` to ``last``
    (newest first when ``first`` is the newer end, as when searching for a fix)."""
    low, high = sorted((first, last))
    inside = sorted({v for v in versions if low < v < high} | {low, high})
    return inside if first <= last else inside[::-1]


def pin(package: str, version: Version) -> str:
    return f"{package}=={version}"


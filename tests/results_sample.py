"""The committed results file the command tests read: a calibration check run on a 2-core CPU
(tiny.en ``compiled`` and ``compiled-static`` with their twins slowed 2x, judged against a
baseline), tests/data/results-v1-sample.json, and copies of it changed for a test."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "results-v1-sample.json"
KEY = "cpu-x86_64-avx512-t2"


def copy_sample(tmp_path: Path, name: str, change=None) -> Path:
    """The sample as another results file, changed by ``change(data)``."""
    data = json.loads(SAMPLE.read_text())
    if change:
        change(data)
    path = tmp_path / KEY / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def as_default_run(data: dict) -> None:
    """As a default run: nothing injected."""
    data["options"]["inject_slowdown"] = 0.0

"""One results file per run: what was measured, how it was judged, and on what.

``results/runs/<hardware key>/<UTC time>-<pid>.json`` holds the environment, the options, every
raw sample with the contention evidence of its round, each measurement's summary and every
verdict.  A file is written to a temporary name and then linked to its final name, which fails
rather than replace an existing file: no run ever overwrites an earlier one, and no reader ever
sees a half-written file.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path

SCHEMA_VERSION = 1


def _passes(passes) -> list:
    return [[[s.utterance, s.seconds, s.tokens] for s in p.samples] for p in passes]


def measurement_record(m, summary) -> dict:
    """A measurement (timing.Measurement) and its summary.Summary as plain data."""
    return {
        "model": m.model, "variant": m.variant, "reference": m.reference, "audio_set": m.audio_set,
        "utterances": len(m.reference_texts), "audio_seconds": m.audio_seconds, "setup": m.setup,
        "rounds_requested": m.rounds_requested, "first_call_seconds": m.first_call_seconds,
        "warmup_seconds": m.warmup_seconds, "summary": summary.as_dict(),
        "loads": [load.as_dict() for load in m.loads],
        "samples": _passes(m.passes), "reference_samples": _passes(m.reference_passes),
        "transcripts": {u: t.text for u, t in m.passes[-1].transcripts.items()} if m.passes else {},
    }


def check_writable(folder: Path) -> None:
    """Fail before any long work when results cannot be written."""
    from .errors import UsageError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"--results-dir {folder}: cannot write there ({exc.strerror or exc}). "
                         "Choose a writable folder with --results-dir.") from exc


def write_run(folder: Path, hardware_key: str, data: dict) -> Path:
    """Write ``data`` as a new file under ``folder/hardware_key``; never replaces a file."""
    target_dir = folder / hardware_key
    target_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    text = json.dumps({"schema_version": SCHEMA_VERSION, **data}, indent=1, sort_keys=True, default=str) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".run-", suffix=".tmp", dir=target_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        for attempt in range(100):
            path = target_dir / f"{stamp}-{os.getpid()}{'' if attempt == 0 else f'-{attempt}'}.json"
            try:
                os.link(tmp, path)  # fails if the name exists: never overwrite
                return path
            except FileExistsError:
                continue
        raise FileExistsError(f"{target_dir}: could not find a free name for {stamp}")
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_run(path: Path) -> dict:
    from .errors import UsageError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a readable results file ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(f"{path}: results schema_version {data.get('schema_version') if isinstance(data, dict) else None!r}, "
                         f"this suite reads {SCHEMA_VERSION}")
    return data

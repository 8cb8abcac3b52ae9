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


def measurement_record(m, summary, diagnostics: dict | None = None) -> dict:
    """A measurement (timing.Measurement), its summary.Summary and its diagnostics as plain data."""
    return {
        "model": m.model, "variant": m.variant, "reference": m.reference, "audio_set": m.audio_set,
        "utterances": len(m.reference_texts), "audio_seconds": m.audio_seconds, "setup": m.setup,
        "rounds_requested": m.rounds_requested, "first_call_seconds": m.first_call_seconds,
        "warmup_seconds": m.warmup_seconds, "summary": summary.as_dict(),
        "loads": [load.as_dict() for load in m.loads], "machine_probe_ms": [[round(p, 3) for p in r] for r in m.probes],
        "samples": _passes(m.passes), "reference_samples": _passes(m.reference_passes),
        "transcripts": {u: t.text for u, t in m.passes[-1].transcripts.items()} if m.passes else {},
        "diagnostics": diagnostics or {
            "first_call_seconds": m.first_call_seconds,
            "warmup_compile": m.warmup_compile.as_dict() if m.warmup_compile else None,
            "timed_compile": m.timed_compile.as_dict() if m.timed_compile else None},
    }


def run_record(options, hardware, summaries: dict, exit_status: int) -> dict:
    """The content of a run's results file: the environment, the options (plugin.SuiteOptions),
    every measurement with its summary (``summaries``: (model, variant) -> summary.Summary) and
    diagnostics, every verdict, and what failed."""
    from .hardware import software

    return {
        "hardware": hardware.as_dict(), "software": software(),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "exit_status": exit_status,
        "options": {"profile": options.profile, "models": options.models, "variants": options.variants,
                    "rounds": options.rounds, "utterances": options.limit, "confidence": options.confidence,
                    "record": options.record, "inject_slowdown": options.inject_slowdown,
                    **options.settings.as_dict()},
        "measurements": [measurement_record(m, summaries[key], options.diagnostics.get(key))
                         for key, m in options.measurements.items()],
        "verdicts": [{"model": model, "variant": variant, **verdict.as_dict()}
                     for model, variant, verdict in options.verdicts],
        "failures": options.failures,
        "recorded_baseline": str(options.recorded[0]) if options.recorded else None,
    }


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
    fd, tmp = temporary_file(target_dir, "run")
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


def runs_newest_first(folder: Path, hardware_key: str):
    """(path, data) of the readable results files of ``hardware_key`` under ``folder``, newest
    first; files of another schema, or damaged ones, are passed over."""
    from .errors import SuiteError

    for path in sorted((Path(folder) / hardware_key).glob("*.json"), reverse=True):
        try:
            yield path, load_run(path)
        except SuiteError:
            continue


def require_new_folder(path: Path, option: str = "--out") -> None:
    """A report folder must be new or empty: an earlier report is never overwritten."""
    from .errors import UsageError

    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{option} {path}: exists and is not an empty folder; choose a new folder "
                         "(an earlier report is never overwritten)")


def latest_cold_compile(folder: Path, hardware_key: str, versions: dict, model: str, variant: str,
                        max_new_tokens: int) -> dict | None:
    """The cold/warm compile latency an earlier run measured for the same hardware, torch and
    transformers versions, model, variant and token budget (newest first), marked with its file."""
    for path, data in runs_newest_first(folder, hardware_key):
        software = data.get("software", {})
        if any(software.get(k) != v for k, v in versions.items()):
            continue
        for m in data.get("measurements", []):
            cold = (m.get("diagnostics") or {}).get("cold_compile")
            if (cold and m["model"] == model and m["variant"] == variant
                    and m["setup"].get("max_new_tokens") == max_new_tokens
                    and cold.get("source") == "measured in this run"):
                return {**cold, "source": f"measured by {path.name}"}
    return None

"""Recording a baseline: the entry a measurement makes (with what it keeps of the run's
diagnostics), upserted into its hardware's file under a lock and written atomically, with the diff
for review.  The file's format, validation and lookup: judge.baselines."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..files import replace_atomically
from ..judge.baselines import BaselineFile, Entry, load, path_for, protocol_of
from ..judge.device_time import device_speedup_interval, device_time_interval
from ..measure.diagnostics_data import Diagnostics
from ..measure.kernel_profile import fingerprint_of


def entry_from(measurement, summary, provenance: dict, diagnostics: Diagnostics | None = None) -> Entry:
    """A baseline entry from a measurement (timing.Measurement), its summary.Summary and, when
    they were measured, its diagnostics (diagnostics.diagnose)."""
    from ..inputs.architectures import is_random

    keeps_wer = not is_random(measurement.model)  # random weights transcribe nonsense: no WER is kept
    entry = Entry(model=measurement.model, variant=measurement.variant,
                  protocol=protocol_of(measurement.setup, measurement.audio_set, len(measurement.reference_texts)),
                  seconds=round(summary.seconds.estimate, 4), wer=round(summary.wer, 4) if keeps_wer else None,
                  provenance={**provenance, "rounds": len(measurement.passes)},
                  machine_probe_ms=summary.machine_probe_ms)
    if diagnostics:
        entry.diagnostics = baseline_fields(diagnostics)
    if summary.speedup is not None:
        entry.reference_seconds = round(summary.reference_seconds.estimate, 4)
        entry.reference_wer = round(summary.reference_wer, 4) if keeps_wer else None
        entry.speedup = round(summary.speedup.estimate, 4)
        if not summary.speedup.single_round:
            entry.speedup_interval = [round(summary.speedup.low, 4), round(summary.speedup.high, 4)]
    return entry


def write_with_diff(path: Path, baseline: BaselineFile) -> str:
    """Write ``baseline`` to ``path`` atomically; return the unified diff from what was there."""
    import difflib

    before = path.read_text(encoding="utf-8") if path.exists() else ""
    after = baseline.to_json()
    replace_atomically(path, after)
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{path.name}", f"b/{path.name}"))


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on ``.<name>.lock`` beside ``path`` for a read-modify-write of ``path``: two recordings at
    once (two variants recorded by two processes) both keep their entries, instead of the later
    write dropping the earlier one's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, writes stay atomic
        yield
        return
    with open(path.with_name(f".{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record(folder: Path, hardware_key: str, device_name: str, entries: list[Entry]) -> tuple[Path, str]:
    """Upsert ``entries`` into the hardware's file (keeping every other entry), write it
    atomically, and return (path, unified diff of the change)."""
    path = path_for(folder, hardware_key)
    with locked(path):
        baseline = load(path, hardware_key) if path.exists() else BaselineFile(hardware_key, device_name)
        for entry in entries:
            baseline.upsert(entry)
        return path, write_with_diff(path, baseline)


def device_time_fields(profile: dict, reference_profile: dict | None) -> dict:
    """A recording's device-time figures: the estimates the device-time checks judge against
    (device_time.device_time_interval, device_speedup_interval); none on a CPU."""
    fields = {}
    busy = device_time_interval(profile)
    if busy is not None:
        fields["device_busy_ms"] = round(busy.estimate, 4)
    speedup = device_speedup_interval(profile, reference_profile)
    if speedup is not None:
        fields["device_speedup"] = round(speedup.estimate, 4)
    if profile.get("kernel_seconds") is not None:  # the first profiled call's summed kernel durations
        fields["kernel_ms"] = round(1e3 * profile["kernel_seconds"], 4)
    return fields


def baseline_fields(diagnostics: Diagnostics) -> dict:
    """The part of a run's diagnostics (diagnostics.diagnose) a baseline entry keeps (see DIAGNOSTIC_FIELDS)."""
    fields: dict = {}
    totals = diagnostics.compile
    if totals and diagnostics.timed_compile:
        fields.update(graph_breaks=totals.graph_breaks, graphs=totals.graphs,
                      cudagraph_skip_reasons=totals.cudagraph_skip_reasons)
    if diagnostics.first_call_seconds is not None and diagnostics.warmup_compile:
        fields["first_call_seconds"] = round(diagnostics.first_call_seconds, 2)
    cold = diagnostics.cold_compile
    if cold:
        fields["cold_compile_seconds"] = round(cold["cold_seconds"], 2)
        fields["warm_compile_seconds"] = round(cold["warm_seconds"], 2)
    if diagnostics.peak_memory_bytes() is not None:
        fields["peak_memory_bytes"] = int(diagnostics.peak_memory_bytes())
    if diagnostics.reference and diagnostics.peak_memory_bytes("reference") is not None:
        fields["reference_peak_memory_bytes"] = int(diagnostics.peak_memory_bytes("reference"))
    mine, reference = diagnostics.variant or {}, diagnostics.reference or {}
    if mine.get("profile"):
        fields["fingerprint"] = fingerprint_of(mine["profile"])
        fields.update(device_time_fields(mine["profile"], reference.get("profile")))
    phases = mine["phases"]
    for key in ("per_token_ms", "first_token_ms", "encoder_ms"):
        value = phases.get(key)
        if value is not None and value == value:  # not NaN
            fields[key] = round(value, 3)
    return fields

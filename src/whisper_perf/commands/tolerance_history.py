"""``calibrate --write-tolerances``: where a calibration's tolerances go, and whether this machine's
earlier default runs of the same software refute them.

A calibration at batch 1 writes the file's tolerances; one at ``--batch N`` those of the file's
batched measurement (``batched``), which must be at N: a GPU waits on the host at batch 1 and is
busy at batch N, so the two spread differently.

A calibration's check runs span minutes; a shared VM drifts over longer times.  On the Intel host
a speedup tolerance suggested from 25 minutes of runs (2%) flagged a default run of the unchanged
build 30 minutes later (docs/measured.md).  The default runs under ``results/runs/<key>`` made with
the torch and transformers the calibration measured are the record of that drift: a suggested
tolerance that turns one of their passing checks into a failure is a false alarm waiting to
happen, so it is not written; the file keeps its own for that field, and the command says which
run it would have flagged.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from ..errors import UsageError
from ..judge import baselines
from ..record import baseline_recording
from ..record.results import RunResult, runs_newest_first
from .calibration_analysis import is_default_run
from .judge import rejudge

VERSIONS = ("torch", "transformers")  # what must match for an earlier run to count as the same software


def same_software_default_runs(root: Path, hardware_key: str, software: dict) -> list[RunResult]:
    """The default runs (``is_default_run``) of ``hardware_key`` under results/runs made with the
    torch and transformers of ``software``."""
    return [run for run in runs_newest_first(root / "results" / "runs", hardware_key)
            if is_default_run(run) and all(run.software.get(k) == software.get(k) for k in VERSIONS)]


def _failing(run: RunResult, folder: Path) -> dict:
    return {(model, variant, v.check): v.message for model, variant, v in rejudge(run, folder) if v.outcome.fails}


def with_tolerances(file: baselines.BaselineFile, changed: dict, batch_size: int = 1) -> baselines.BaselineFile:
    """``file`` with the ``changed`` tolerances where a calibration at ``batch_size`` writes them: the
    file's own at batch 1, its batched measurement's otherwise (baseline_file checked that it is at
    that batch size)."""
    tolerances = replace(file.tolerances_of({"batch_size": batch_size}), **changed)
    if batch_size == 1:
        return replace(file, tolerances=tolerances)
    return replace(file, batched=replace(file.batched, tolerances=tolerances))


def newly_flagged(file: baselines.BaselineFile, changed: dict, runs: list[RunResult], failing_now: list[dict],
                  batch_size: int = 1) -> list[str]:
    """The checks of ``runs`` that pass with ``file`` (``failing_now``: each run's failing checks
    with it) and fail with the ``changed`` tolerances: "<results file>: <model>/<variant> <message>"."""
    with tempfile.TemporaryDirectory(prefix="whisper-perf-tolerances-") as scratch:
        (Path(scratch) / f"{file.hardware_key}.json").write_text(with_tolerances(file, changed, batch_size).to_json(),
                                                                 encoding="utf-8")
        return [f"{Path(run.path).name}: {model}/{variant} {message}"
                for run, before in zip(runs, failing_now)
                for (model, variant, check), message in _failing(run, Path(scratch)).items()
                if (model, variant, check) not in before]


def tolerances_to_write(root: Path, hardware_key: str, suggested: dict, software: dict,
                        batch_size: int = 1) -> tuple[dict, list[str]]:
    """(the suggested tolerances that flag none of the earlier same-software default runs, one
    line per suggestion held back saying what it would have flagged and what the file keeps)."""
    runs = same_software_default_runs(root, hardware_key, software)
    folder = root / "baselines"
    file = baselines.load(baselines.path_for(folder, hardware_key), hardware_key)
    current = asdict(file.tolerances_of({"batch_size": batch_size}))
    tightened = {name: value for name, value in suggested.items() if value < current[name]}
    failing_now = [_failing(run, folder) for run in runs] if tightened else []  # judged once, not per tolerance
    written, held = {}, []
    for name, value in suggested.items():
        flagged = newly_flagged(file, {name: value}, runs, failing_now, batch_size) if name in tightened else []
        if flagged:
            held.append(f"{name} {value:.1%} not written (the file keeps {current[name]:.1%}): it would have flagged "
                        f"{len(flagged)} check(s) of earlier default runs here with the same torch and transformers, "
                        f"which pass now: " + "; ".join(flagged))
        else:
            written[name] = value
    return written, held


def baseline_file(root: Path, hardware_key: str, batch_size: int = 1) -> Path:
    """The project's baseline file of ``hardware_key``, which --write-tolerances changes: at a batch
    size other than 1, the tolerances written are its batched measurement's, which it must choose."""
    path = baselines.path_for(root / "baselines", hardware_key)
    if not path.exists():
        raise UsageError(f"{path} does not exist: record a baseline first (nox -s record)")
    chosen = baselines.load(path, hardware_key).batched
    if batch_size != 1 and (chosen is None or chosen.batch_size != batch_size):
        raise UsageError(f"{path}: this calibration measures --batch {batch_size}, so its tolerances are those of the "
                         f"batched measurement, and the file's is {f'batch {chosen.batch_size}' if chosen else 'not chosen'}"
                         f"; choose it with nox -s batch-sweep -- --write, or calibrate at its batch size")
    return path


def write_tolerances(root: Path, hardware_key: str, suggested: dict, batch_size: int = 1) -> str:
    """Store the suggested tolerances in the hardware's baseline file (at a batch size other than 1,
    in its batched measurement's); returns the diff."""
    path = baseline_file(root, hardware_key, batch_size)
    with baseline_recording.locked(path):
        current = baselines.load(path, hardware_key)
        return baseline_recording.write_with_diff(path, with_tolerances(current, suggested, batch_size))

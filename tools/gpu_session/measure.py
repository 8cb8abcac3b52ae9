"""The measurements of one GPU session, run on the GPU machine by stage.sh (standard library only).

Five steps on tiny.en's compiled-static-prebuilt and its eager+math reference, in priority order:

1. a batch sweep (commands/batch_sweep.py: sizes 1, 8 and 32 over 32 utterances): seconds per
   utterance and device busy per size, and the batch size it chooses, written into the baseline
   file that comes back (``batched``: the full profile's batched measurement on this GPU);
2. a calibration at that batch size (commands/calibrate.py; batch 8 if the sweep did not run):
   one recording, then up to three check runs, as many as ``--budget-minutes`` holds (three
   judged A/A runs are the fewest it suggests tolerances from), each timing the variant
   unchanged (A/A) and a twin slowed by 5% on the device (``--inject-on device``); its report
   counts false alarms and detections of the speed and device-time checks and suggests the
   tolerances of the batched measurement, device time included;
3. the profile readback on CUDA events: read_events against torch's own prof.events() (a test of
   tests/test_kernel_profile.py that skips without CUDA);
4. the batch-1 recording (the latency protocol): device time over profiled calls, fingerprints,
   RTFx;
5. an A/A run at batch 1 against step 4's recording, with a twin slowed by 10% on the host.

A step starts only if the budget still holds its estimate (the minutes per suite process seen so
far, times the processes it starts at the least; the sweep counts one per size, the readback half),
so the session ends in time with what it measured; the calibration is given what is left less
the readback's estimate.  What comes back ($OUT, at most 8 files): summary.md and summary.json
(each step's command, exit status, minutes and headline), the baseline files the recordings
wrote, the sweep's and the calibration's reports, and results.tar.gz (every results file,
report and log).

    python tools/gpu_session/measure.py --out DIR                 # on the GPU
    python tools/gpu_session/measure.py --out DIR --device cpu    # the same steps, small, here
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VARIANT = "compiled-static-prebuilt"
READBACK = 0.5  # suite processes the readback is taken to need: one small compile, no timed rounds


@dataclass(frozen=True)
class Step:
    name: str
    command: list[str]  # after the Python: a module and its arguments
    processes: float  # suite processes it starts at the least: its estimate is this many times the minutes per process
    env: dict
    suite: bool = True  # its minutes per process estimate the next steps' (a suite process each)
    headline: str = r"^(whisper_perf: |Written to )(?!.*written to)"  # the log line the summary shows
    runs_logs: Path | None = None  # a log per process it ran there (a calibration's logs/)

    def processes_run(self) -> float:
        """The suite processes it ran: the logs it wrote where it keeps one per process, else its least."""
        logs = sorted(self.runs_logs.glob("*.log")) if self.runs_logs else []
        return len(logs) or self.processes


def chosen_batch(work: Path, default: int) -> int:
    """The batch size the sweep step chose (batch-sweep.json), or ``default`` when it did not run."""
    found = work / "batch-sweep" / "batch-sweep.json"
    chosen = json.loads(found.read_text()).get("chosen") if found.exists() else None
    return chosen["batch_size"] if chosen else default


def steps(device: str, work: Path, common: list[str], calibration_minutes: float | None = None) -> list[Step]:
    """The session's steps in priority order; on a CPU small (4 utterances, batch sizes 1 and 2,
    one check run, the slowdown on the host: --inject-on device needs CUDA).  The calibration runs
    at the batch size the sweep chose, within ``calibration_minutes`` (its --budget-minutes), so
    this is called again before each step."""
    gpu = device == "cuda"
    limit, record_rounds, rounds = (16, "6", "3") if gpu else (4, "2", "2")
    sweep_sizes, sweep_limit = ("1,8,32", "32") if gpu else ("1,2", "2")
    batch = chosen_batch(work, 8 if gpu else 2)
    inject = {"WHISPER_PERF_SENSITIVITY_CHECK": "1"}
    suite = ["pytest", "perf_tests", "-p", "no:cacheprovider", "-q", "-rsxX", *common]
    sweep = ["whisper_perf", "batch-sweep", "--variant", VARIANT, "--device", device, "--sizes", sweep_sizes,
             "--limit", sweep_limit, "--out", str(work / "batch-sweep"), "--write", "--baselines", str(work / "baselines")]
    calibration = work / f"calibration-batch-{batch}"
    budget = ["--budget-minutes", f"{calibration_minutes:.2f}"] if calibration_minutes is not None else []
    calibrate = ["whisper_perf.commands.calibrate", "--variant", VARIANT, "--device", device, "--record-runs", "1",
                 "--runs", "3" if gpu else "1", *budget, "--slowdown", "0.05", "--inject-on", "device" if gpu else "host",
                 "--limit", str(max(limit, batch)), "--rounds", rounds, "--out", str(calibration),
                 "--", "--batch", str(batch), "--isolate-builds", "never"]
    return [
        # one process, a build of both and timing per size: each size taken as a suite process
        Step("batch-sweep", sweep, len(sweep_sizes.split(",")), {}),
        # a recording and at least one check run
        Step(f"calibrate-batch-{batch}", calibrate, 2, {}, runs_logs=calibration / "logs"),
        # read_events against torch's own prof.events() on CUDA events (on a CPU it skips, saying so)
        Step("profile-readback", ["pytest", "tests/test_kernel_profile.py", "-k", "cuda", "-p", "no:cacheprovider",
                                  "-q", "-rs"], READBACK, {}, suite=False, headline=r"^\d+ (passed|failed|skipped|error)"),
        Step("record-batch-1", [*suite, "--record", "--limit", str(limit), "--rounds", record_rounds], 1, {}),
        Step("aa-and-host-10pct-batch-1", [*suite, "--limit", str(limit), "--rounds", rounds,
                                           "--inject-slowdown", "0.1"], 1, inject),
    ]


def run_step(step: Step, logs: Path, timeout: float) -> dict:
    """Run one step; at its timeout, interrupt its whole process group (the suite's pytest
    processes too, so none keeps the GPU), then kill what is still there 30 s later."""
    command = [sys.executable, "-m", *step.command]
    start = time.monotonic()
    log = logs / f"{step.name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "250", **step.env})
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = "timeout"
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    minutes = (time.monotonic() - start) / 60
    headline = next((line for line in reversed(log.read_text().splitlines()) if re.match(step.headline, line)), "")
    print(f"{step.name}: exit {code}, {minutes:.1f} min; {headline}", flush=True)
    return {"step": step.name, "args": step.command[1:], "exit": code, "minutes": round(minutes, 2),
            "per_process": minutes / step.processes_run() if step.suite else 0.0, "headline": headline}


def summary_text(device: str, done: list[dict], skipped: list[str], budget: float) -> str:
    lines = [f"# GPU session: {device}, budget {budget:g} min", "",
             "| step | exit | min | headline |", "|---|---|---|---|"]
    lines += [f"| {d['step']} | {d['exit']} | {d['minutes']:.1f} | {d['headline'].replace('|', '/')} |" for d in done]
    if skipped:
        lines += ["", f"Not run (the budget would not hold them): {', '.join(skipped)}"]
    lines += ["", "Arguments of each step (beside the common ones in summary.json):", ""]
    lines += [f"- {d['step']}: `{' '.join(d['args'])}`" for d in done]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the files to bring back go ($OUT)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--budget-minutes", type=float, default=9.0, help="for all steps together (default 9)")
    parser.add_argument("--first-estimate", type=float, default=2.0,
                        help="minutes one suite process is taken to need before one has run (default 2)")
    args = parser.parse_args()
    work = Path(os.environ.get("WHISPER_PERF_SESSION_WORK", ROOT / ".device" / "work"))
    shutil.rmtree(work, ignore_errors=True)
    baselines, results, logs = work / "baselines", work / "results", work / "logs"
    shutil.copytree(ROOT / "baselines", baselines)  # the committed entries stay; the recordings add theirs
    logs.mkdir(parents=True)
    common = ["--variant", VARIANT, "--device", args.device, "--isolate-builds", "never",
              "--compile-latency", "never", "--baselines", str(baselines), "--results-dir", str(results)]
    start, done, skipped = time.monotonic(), [], []
    for index in range(len(steps(args.device, work, common))):
        left = args.budget_minutes - (time.monotonic() - start) / 60
        per_process = max([d["per_process"] for d in done if d["per_process"]] or [args.first_estimate])
        # the sweep's batch; the calibration's minutes, less the readback's after it
        step = steps(args.device, work, common, left - READBACK * per_process)[index]
        if per_process * step.processes > left:
            skipped.append(step.name)
            continue
        done.append(run_step(step, logs, timeout=60 * left))
    bring_back(args.out, work, baselines, args.device, done, skipped, common, args.budget_minutes)
    return 0 if done else 1


def bring_back(out: Path, work: Path, baselines: Path, device: str, done: list[dict], skipped: list[str],
               common: list[str], budget: float) -> None:
    """The files that come back: the summary, every baseline file a recording wrote or changed, the
    calibration's report, and everything else in one archive."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(summary_text(device, done, skipped, budget))
    (out / "summary.json").write_text(json.dumps({"common": common, "steps": done, "skipped": skipped}, indent=1))
    for written in sorted(baselines.glob("*.json")):
        committed = ROOT / "baselines" / written.name
        if not committed.exists() or written.read_bytes() != committed.read_bytes():
            shutil.copy(written, out / f"baseline-{written.name}")
    for report in [*sorted(work.glob("calibration-*/calibration.md")), work / "batch-sweep" / "batch-sweep.md"]:
        if report.exists():
            shutil.copy(report, out / f"{report.parent.name}.md")
    with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
        for part in ("results", "logs", "batch-sweep", *(p.name for p in work.glob("calibration-*"))):
            if (work / part).exists():
                tar.add(work / part, arcname=part)


if __name__ == "__main__":
    raise SystemExit(main())

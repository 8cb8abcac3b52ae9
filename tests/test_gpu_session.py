"""The GPU session's plan (tools/gpu_session/measure.py): its steps in priority order, the calibration
at the batch size the sweep chose, within the minutes the budget still holds.  The script itself
runs end to end here with ``stage.sh 2 --device cpu`` (docs/gpu.md; its last run's summary is in
docs/measurements/cpu-x86_64-avx512-intel-xeon-t2/gpu-session-20261207/)."""

import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_session_measure", ROOT / "tools" / "gpu_session" / "measure.py")
measure = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # its dataclasses look it up there
_spec.loader.exec_module(measure)


def _calibration(steps):
    (step,) = [s for s in steps if s.name.startswith("calibrate-")]
    return step


def _value(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


def test_the_steps_go_in_priority_order_and_the_calibration_waits_for_the_sweeps_choice(tmp_path):
    steps = measure.steps("cuda", tmp_path, ["--variant", "v"])
    assert [s.name for s in steps] == ["batch-sweep", "calibrate-batch-8", "profile-readback", "record-batch-1",
                                       "aa-and-host-10pct-batch-1"]  # batch 8 until a sweep has chosen
    sweep = steps[0].command
    assert _value(sweep, "--sizes") == "1,8,32" and "--write" in sweep and steps[0].processes == 3  # one per size
    (tmp_path / "batch-sweep").mkdir()
    (tmp_path / "batch-sweep" / "batch-sweep.json").write_text(json.dumps({"chosen": {"batch_size": 32, "why": "x"}}))
    calibration = _calibration(measure.steps("cuda", tmp_path, ["--variant", "v"]))
    assert calibration.name == "calibrate-batch-32"
    assert _value(calibration.command, "--batch") == "32" and _value(calibration.command, "--limit") == "32"


def test_the_calibration_asks_three_check_runs_within_the_minutes_left_and_a_5pct_device_slowdown(tmp_path):
    calibration = _calibration(measure.steps("cuda", tmp_path, [], 5.25))
    command = calibration.command
    assert _value(command, "--runs") == "3" and _value(command, "--budget-minutes") == "5.25"
    assert _value(command, "--slowdown") == "0.05" and _value(command, "--inject-on") == "device"
    assert calibration.processes == 2  # it starts when a recording and one check run fit
    cpu = _calibration(measure.steps("cpu", tmp_path, [], 10))  # the rehearsal here stays small
    assert _value(cpu.command, "--runs") == "1" and _value(cpu.command, "--inject-on") == "host"


def test_the_minutes_per_process_count_the_processes_the_calibration_ran(tmp_path):
    calibration = _calibration(measure.steps("cuda", tmp_path, [], 5.0))
    assert calibration.processes_run() == 2  # before it ran, or where it left no log: its least
    calibration.runs_logs.mkdir(parents=True)
    for name in ("record-00", "check-00", "check-01"):
        (calibration.runs_logs / f"{name}.log").write_text("")
    assert calibration.processes_run() == 3


def test_a_step_past_its_time_is_interrupted_with_its_children_and_the_session_goes_on(tmp_path):
    """A step that outlives its share of the budget: SIGINT to its process group, the processes it
    started too (a suite's pytest must not keep the GPU), and what it printed is still read."""
    (tmp_path / "sleeper.py").write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(tmp_path / 'child.pid')!r}, 'w').write(str(child.pid))\n"
        "print('whisper_perf: started', flush=True)\n"
        "time.sleep(60)\n")
    step = measure.Step("sleeper", ["sleeper"], 1, {"PYTHONPATH": str(tmp_path)})
    done = measure.run_step(step, tmp_path, timeout=3)
    assert done["exit"] == "timeout" and done["minutes"] < 0.5 and done["headline"] == "whisper_perf: started"
    child = int((tmp_path / "child.pid").read_text())
    for _ in range(50):
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False

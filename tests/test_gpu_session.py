"""The GPU session's plan (tools/gpu_session/measure.py): its steps in priority order, the calibration
at the batch size the sweep chose, within the minutes the budget still holds.  The script itself
runs end to end here with ``stage.sh 2 --device cpu`` (docs/gpu.md; its last run's summary is in
docs/measurements/cpu-x86_64-avx512-intel-xeon-t2/gpu-session-20261207/)."""

import importlib.util
import json
import sys
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
    assert _value(sweep, "--sizes") == "1,8,32" and "--write" in sweep and not steps[0].suite
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


def test_the_minutes_per_process_count_the_check_runs_the_calibration_ran(tmp_path):
    calibration = _calibration(measure.steps("cuda", tmp_path, [], 5.0))
    assert calibration.processes_run() == 2  # before it ran: its least
    calibration.runs_file.parent.mkdir(parents=True)
    calibration.runs_file.write_text(json.dumps({"runs": [{"kind": "record"}, {"kind": "check"}, {"kind": "check"}]}))
    assert calibration.processes_run() == 3

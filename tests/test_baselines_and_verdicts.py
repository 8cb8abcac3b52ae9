"""Baseline files (validation, atomic writes, recording) and verdict rules, on real files."""

import json
import math
from pathlib import Path

import pytest

from whisper_perf import files
from whisper_perf.judge import baselines
from whisper_perf.judge.baselines import Anomaly, BaselineError, Entry, Tolerances
from whisper_perf.judge.stats import Interval
from whisper_perf.judge.summary import Summary
from whisper_perf.record import baseline_recording
from whisper_perf.judge.verdicts import (Outcome, Verdict, judge_speedup, judge_time, judge_times, judge_wer,
                                         strict_gate_refuses)

PROTOCOL = {"dataset": "short", "utterances": 56, "max_new_tokens": 128, "fixed_work": False,
            "dtype": "float32", "batch_size": 1}
KEY = "cpu-x86_64-avx2-t2"


def entry(**changes):
    data = dict(model="tiny.en", variant="compiled-static", protocol=dict(PROTOCOL), seconds=40.0, wer=0.07,
                reference_seconds=44.0, reference_wer=0.07, speedup=1.1)
    data.update(changes)
    return Entry(**data)


def write(tmp_path, data, name=KEY):
    path = tmp_path / f"{name}.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def valid_file():
    f = baselines.BaselineFile(KEY, "AMD EPYC", entries=[entry()])
    return json.loads(f.to_json())


def test_round_trip(tmp_path):
    path = write(tmp_path, valid_file())
    loaded = baselines.load(path, KEY)
    assert loaded.find("tiny.en", "compiled-static", PROTOCOL).speedup == 1.1
    assert loaded.find("tiny.en", "compiled-static", {**PROTOCOL, "utterances": 10}) is None


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema_version=99), "schema_version 99"),
    (lambda d: d["entries"][0].pop("seconds"), r"entry 0 \(tiny.en/compiled-static\): missing field 'seconds'"),
    (lambda d: d["entries"][0].update(seconds="fast"), "field 'seconds' has str 'fast'"),
    (lambda d: d["entries"][0].update(seconds=0), "field 'seconds' must be positive"),
    (lambda d: d["entries"][0].update(speedup=-1.0), "field 'speedup' must be positive"),
    (lambda d: d["entries"][0].update(wer=True), "field 'wer' has bool"),
    (lambda d: d["entries"][0].update(machine_probe_ms=-3.0), "field 'machine_probe_ms' must be positive"),
    (lambda d: d.update(tolerances={"speedup": 1.5}), "tolerance speedup=1.5"),
    (lambda d: d.update(tolerances={"sped": 0.1}), "unknown tolerance"),
    (lambda d: d["entries"][0].update(anomaly={"reference": "x"}), "anomaly: missing field 'reason'"),
    (lambda d: d["entries"][0].update(anomaly={"reason": "r", "torch": "=>2"}), "anomaly"),
    (lambda d: d.update(hardware_key="cuda-sm_89-nvidia-l4"), "is for hardware key 'cuda-sm_89-nvidia-l4'"),
    (lambda d: d["entries"].append(d["entries"][0]), "a second entry for tiny.en/compiled-static"),
])
def test_malformed_files_name_file_entry_and_field(tmp_path, mutate, message):
    data = valid_file()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(BaselineError, match=message) as error:
        baselines.load(path, KEY)
    assert str(path) in str(error.value)


def test_truncated_file_is_a_clear_error(tmp_path):
    text = json.dumps(valid_file(), indent=2)
    path = write(tmp_path, text[: len(text) // 2])
    with pytest.raises(BaselineError, match="not valid JSON"):
        baselines.load(path, KEY)


def test_file_name_must_be_its_key(tmp_path):
    path = write(tmp_path, valid_file(), name="other")
    with pytest.raises(BaselineError, match="file name must be the hardware key"):
        baselines.load(path)


def test_record_keeps_other_entries_and_reviewed_fields_and_shows_a_diff(tmp_path):
    first = entry(anomaly=Anomaly("reviewed reason"), tolerances=Tolerances(speedup=0.2))
    other = entry(variant="compiled", speedup=1.05)
    baseline_recording.record(tmp_path, KEY, "AMD EPYC", [first, other])
    path, diff = baseline_recording.record(tmp_path, KEY, "AMD EPYC", [entry(speedup=1.2)])
    loaded = baselines.load(path, KEY)
    assert {e.variant for e in loaded.entries} == {"compiled", "compiled-static"}
    updated = loaded.find("tiny.en", "compiled-static", PROTOCOL)
    assert updated.speedup == 1.2 and updated.anomaly.reason == "reviewed reason"
    assert updated.tolerances.speedup == 0.2
    assert '-      "speedup": 1.1,' in diff and '+      "speedup": 1.2,' in diff
    # no temporary file left behind (the lock file of concurrent recordings stays, empty)
    assert [p.name for p in tmp_path.iterdir() if p.name != f".{path.name}.lock"] == [path.name]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    path.write_text("old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", fail)
    with pytest.raises(OSError):
        files.replace_atomically(path, "new")
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def ci(estimate, low, high):
    return Interval(estimate, low, high, 0.95)


@pytest.mark.parametrize("interval, outcome", [
    (ci(1.10, 1.05, 1.15), Outcome.PASS),
    (ci(0.95, 0.90, 1.00), Outcome.PASS),          # below the baseline, but not credibly below 1.1 x 0.9
    (ci(0.93, 0.90, 0.98), Outcome.REGRESSION),    # whole interval below 0.99
    (ci(1.30, 1.25, 1.35), Outcome.IMPROVED),
    (ci(0.95, math.nan, math.nan), Outcome.REGRESSION),  # one round: the estimate decides
])
def test_speedup_rules(interval, outcome):
    verdict = judge_speedup(interval, entry(), Tolerances(speedup=0.1), False, "nox -s record")
    assert verdict.outcome is outcome
    if outcome is Outcome.IMPROVED:
        assert "nox -s record" in verdict.message


def test_known_anomaly_reproduces_or_is_gone():
    anomalous = entry(speedup=0.5, anomaly=Anomaly("turbo slower compiled on L4", "public numbers"))
    held = judge_speedup(ci(0.5, 0.45, 0.55), anomalous, Tolerances(), True, "cmd")
    assert held.outcome is Outcome.KNOWN_ANOMALY and "turbo slower" in held.message
    gone = judge_speedup(ci(1.2, 1.1, 1.3), anomalous, Tolerances(), True, "cmd")
    assert gone.outcome is Outcome.ANOMALY_GONE and gone.outcome.fails
    assert "no longer reproduces" in gone.message and "re-record" in gone.message


def test_anomaly_version_range():
    anomaly = Anomaly("r", torch=">=2.6,<2.8", transformers="<5")
    assert anomaly.applies("2.6.0+cu124", "4.52.4")
    assert not anomaly.applies("2.13.0+cpu", "4.52.4")
    assert not anomaly.applies("2.7.1", "5.24.0")
    assert Anomaly("any").applies("2.13.0", "5.24.0")


def test_time_rules():
    assert judge_time(ci(47.0, 46.5, 47.5), 40.0, 0.15, "cmd").outcome is Outcome.REGRESSION
    assert judge_time(ci(45.0, 44.0, 47.0), 40.0, 0.15, "cmd").outcome is Outcome.PASS
    assert judge_time(ci(30.0, 29.0, 31.0), 40.0, 0.15, "cmd").outcome is Outcome.IMPROVED


def test_wer_rules():
    tol = Tolerances(wer=0.005, wer_vs_eager=0.005)
    assert judge_wer(0.07, 0.07, entry(), tol).outcome is Outcome.PASS
    broken = judge_wer(0.09, 0.07, entry(), tol)
    assert broken.outcome is Outcome.REGRESSION and "eager's 7.00%" in broken.message
    assert judge_wer(0.09, 0.09, entry(), tol).outcome is Outcome.REGRESSION  # both changed: baseline catches it
    assert judge_wer(0.09, 0.09, None, tol).outcome is Outcome.PASS


def test_a_busy_machine_or_a_changed_machine_speed_is_not_judged():
    """Not judged (UNRELIABLE, saying why), whatever the numbers: the speedup on a busy machine, and
    the times when the machine-speed probe moved too far since the recording."""
    busy = judge_speedup(ci(0.5, 0.45, 0.55), entry(), Tolerances(), False, "cmd", "machine busy in 3 of 3 rounds")
    assert busy.outcome is Outcome.UNRELIABLE and busy.message.startswith("unreliable: machine busy in 3 of 3")
    summary = Summary(seconds=ci(20.0, 19.5, 20.5), wer=0.07, rtfx=5.0, tokens=100, noise_cv=0.01, rounds_used=3,
                      busy_rounds=0, reference_seconds=ci(22.0, 21.5, 22.5), reference_wer=0.07,
                      speedup=ci(1.1, 1.05, 1.15), machine_probe_ms=8.0)
    base = entry(seconds=10.0, reference_seconds=11.0, machine_probe_ms=4.0)  # the machine ran the probe twice as fast then
    verdicts = judge_times(summary, base, Tolerances(), "cmd", compiled=True, reference="eager", on_cuda=False)
    assert [v.check for v in verdicts] == ["compiled time", "eager time (reference)"]
    assert all(v.outcome is Outcome.UNRELIABLE and "machine speed changed" in v.message for v in verdicts)
    same_speed = judge_times(summary, entry(seconds=10.0, reference_seconds=11.0, machine_probe_ms=8.0), Tolerances(), "cmd", compiled=True,
                             reference="eager", on_cuda=False)
    assert same_speed[0].outcome is Outcome.REGRESSION  # 20 s against the baseline's 10 s, judged
    on_cuda = judge_times(summary, base, Tolerances(), "cmd", compiled=True, reference="eager", on_cuda=True)
    assert on_cuda[0].outcome is Outcome.REGRESSION  # no CPU probe on a GPU: judged as measured


def _summary(probe_ms=8.0, unreliable=None):
    return Summary(seconds=ci(20.0, 19.5, 20.5), wer=0.07, rtfx=5.0, tokens=100, noise_cv=0.01, rounds_used=3,
                   busy_rounds=0, reference_seconds=ci(22.0, 21.5, 22.5), reference_wer=0.07,
                   speedup=ci(1.1, 1.05, 1.15), machine_probe_ms=probe_ms, unreliable=unreliable)


def test_absolute_figures_follow_one_rule_busy_machine_cpu_model_and_machine_speed():
    """verdicts.absolute_terms, for the summed times and the compile latency alike: a busy machine,
    an entry from another CPU model, a speed change beyond 30%: not comparable, saying why; within
    30%, compared at the recording's machine speed; on a GPU as measured."""
    from whisper_perf.judge.verdicts import absolute_terms

    here = "AMD EPYC 7B13"
    base = entry(machine_probe_ms=8.0, provenance={"device_name": here})
    assert absolute_terms(_summary(10.0), base, on_cuda=False, device_name=here) == (0.8, None)
    assert absolute_terms(_summary(10.0), base, on_cuda=True, device_name=here) == (None, None)
    factor, why = absolute_terms(_summary(8.0), base, on_cuda=False, device_name="Intel(R) Xeon(R) CPU @ 2.20GHz")
    assert factor is None and why.startswith("recorded on another CPU model (AMD EPYC 7B13; this run: Intel(R) Xeon(R)")
    assert absolute_terms(_summary(8.0, "machine busy in 3 of 3"), base, on_cuda=False, device_name=here)[1] == \
        "machine busy in 3 of 3"
    assert "machine speed changed" in absolute_terms(_summary(12.0), base, on_cuda=False, device_name=here)[1]
    # an entry that does not say its CPU model (older files) is judged by the probe alone
    assert absolute_terms(_summary(8.0), entry(machine_probe_ms=8.0), on_cuda=False, device_name=here) == (1.0, None)


def test_compile_latency_is_judged_by_the_time_checks_rules():
    """The new user's false alarm: a cold compile of 87.8 s against 36.1 s recorded while the probe
    read 3.16 ms, measured while it read 9.17 ms: UNRELIABLE with both readings, not REGRESSION."""
    from whisper_perf.judge.diagnostic_verdicts import judge_compile_latency

    base = entry(machine_probe_ms=3.16, diagnostics={"cold_compile_seconds": 36.1})
    check = "cold compile (first call)"
    slow_host = judge_compile_latency(check, 87.8, base, 0.5, _summary(9.17), "cmd", on_cuda=False, device_name=None)
    assert slow_host.outcome is Outcome.UNRELIABLE
    assert "took 9.17 ms in this run, 3.16 ms when the baseline was recorded" in slow_host.message
    steady = judge_compile_latency(check, 40.0, base, 0.5, _summary(3.5), "cmd", on_cuda=False, device_name=None)
    assert steady.outcome is Outcome.PASS  # 40 s at a probe 11% slower: 36.1 s at the recording's speed
    assert "at the recording's machine speed (x0.903; as measured 40 s)" in steady.message
    slower = judge_compile_latency(check, 60.0, base, 0.5, _summary(3.16), "cmd", on_cuda=False, device_name=None)
    assert slower.outcome is Outcome.REGRESSION  # 60 s at the same speed: above 54.2 s
    assert judge_compile_latency(check, 60.0, entry(), 0.5, _summary(), "cmd", on_cuda=False,
                                 device_name=None).outcome is Outcome.NO_BASELINE


def test_a_wer_with_nothing_to_compare_is_not_judged_and_seeded_figures_say_so():
    from whisper_perf.judge.verdicts import SEEDED_NOTE, seeded_note

    alone = judge_wer(0.07, None, None, Tolerances())
    assert alone.outcome is Outcome.NO_BASELINE and "nothing to compare with" in alone.message
    assert judge_wer(0.07, None, entry(wer=None), Tolerances()).outcome is Outcome.NO_BASELINE
    seeded = entry(provenance={"source": "published reference numbers, not measured by this suite"})
    verdict = seeded_note(judge_speedup(ci(1.1, 1.05, 1.15), seeded, Tolerances(), False, "cmd"), seeded)
    assert verdict.outcome is Outcome.PASS and verdict.message.endswith(f"({SEEDED_NOTE})")
    measured = entry(provenance={"source": "measured by this suite"})
    assert SEEDED_NOTE not in seeded_note(judge_speedup(ci(1.1, 1.05, 1.15), measured, Tolerances(), False, "cmd"),
                                          measured).message


def test_headline_counts_what_was_judged_and_never_claims_more():
    from whisper_perf.judge.verdicts import Verdict
    from whisper_perf.record.results import Tally

    v = lambda outcome: Verdict("speedup", outcome, "")  # noqa: E731
    quiet = Tally.of([v(Outcome.PASS)] * 3 + [v(Outcome.NO_BASELINE)] * 9, 0, "cpu-x86_64-avx512-t2")
    assert quiet.text() == ("3 checks passed, 0 failed, 9 not judged (9 without a baseline for cpu-x86_64-avx512-t2: "
                            "record one with nox -s record)")
    assert "regression" not in quiet.text().lower()
    busy = Tally.of([v(Outcome.UNRELIABLE), v(Outcome.KNOWN_ANOMALY), v(Outcome.REGRESSION)], 1, "k")
    assert busy.text() == ("REGRESSION: 1 check passed (1 a known anomaly), 2 failed, 1 not judged (1 unreliable: "
                           "machine busy, or its speed changed since the recording)")
    assert Tally.of([], 0, "k").text() == "nothing judged"
    assert Tally.of([v(Outcome.PASS)], 0, "k").text() == "1 check passed, 0 failed, 0 not judged"
    # what was not applicable is named: a CPU's device checks, not a random-weights WER it never had
    on_a_cpu = [Verdict(check, Outcome.NOT_APPLICABLE, "") for check in ("device time", "device speedup") * 2]
    assert Tally.of([v(Outcome.PASS), *on_a_cpu], 0, "k").text() == (
        "1 check passed, 0 failed, 4 not judged (4 not applicable here: device speedup, device time)")


def test_compiled_slower_than_its_eager_build_fails_without_any_baseline():
    from whisper_perf.judge.verdicts import judge_against_eager

    slower = judge_against_eager(ci(0.62, 0.58, 0.66))
    assert slower.outcome is Outcome.REGRESSION and slower.message.startswith("compiled slower than eager")
    assert judge_against_eager(ci(0.97, 0.90, 1.03)).outcome is Outcome.PASS  # not credibly slower
    assert judge_against_eager(ci(0.5, 0.4, 0.6), "machine busy").outcome is Outcome.UNRELIABLE


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "baselines").glob("*.json")),
                         ids=lambda p: p.stem)
def test_every_committed_baseline_is_valid_and_as_the_suite_writes_it(path):
    """The committed files, recorded or edited by hand in review (tolerances, notes): each loads for
    its own key, and reads back byte for byte as the suite would write it again (no key the suite
    would drop, no formatting that makes the next recording's diff noisy)."""
    baseline = baselines.load(path)  # validates it, its file name (the hardware key) too
    assert baseline.entries and baseline.notes
    assert baseline.to_json() == path.read_text(encoding="utf-8"), (
        f"{path.name}: not in the form the suite writes; rewrite it with "
        "baselines.load(path).to_json() and review the diff (an entry's partial tolerances take the defaults)")


def test_strict_gate_refuses_a_speed_check_not_judged_or_none_judged():
    """The one rule of --strict-gate's exit 7, for the run and for judge alike."""
    judged = ("m", "v", Verdict("speedup", Outcome.PASS, "", speed=True))
    left_open = ("m", "v", Verdict("compiled time", Outcome.NO_BASELINE, "no baseline", speed=True))
    wer = ("m", "v", Verdict("wer", Outcome.PASS, ""))
    not_applicable = ("m", "v", Verdict("device time", Outcome.NOT_APPLICABLE, "not judged on a CPU"))
    assert not strict_gate_refuses([judged, wer, not_applicable])  # a CPU's device time does not block a gate
    assert strict_gate_refuses([judged, left_open])
    assert strict_gate_refuses([wer]) and strict_gate_refuses([])  # nothing judged: never green

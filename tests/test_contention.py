"""Contention: real CPU load from other processes is seen, and a measurement taken under it is
judged unreliable instead of failing."""

import sys
import time

import pytest
from suite_runs import busy_loops

from whisper_perf.build.variants import Transcript
from whisper_perf.judge.stats import Interval
from whisper_perf.judge.summary import summarize
from whisper_perf.judge.verdicts import Outcome, judge_speedup, judge_time
from whisper_perf.measure.contention import Load, LoadMeter, sample_idle
from whisper_perf.measure.timing import Measurement, Pass, Sample

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")


@linux_only
@pytest.mark.quiet  # "own cores > 0.5" needs a core to itself; a parallel worker takes it
def test_a_busy_loop_beside_us_is_seen_and_our_own_work_is_not():
    before = sample_idle(0.5)  # whatever else this machine is doing now
    with LoadMeter() as own:  # this process busy: not "other processes"
        until = time.perf_counter() + 0.5
        while time.perf_counter() < until:
            pass
    assert own.load.own_cores > 0.5 and own.load.others_cores < before.others_cores + 0.25

    with busy_loops(1):
        time.sleep(0.3)  # let it start
        busy = sample_idle(1.0)
    assert busy.others_cores > 0.5 and busy.busy
    assert "other processes used" in busy.evidence()


def test_the_busy_threshold_is_what_others_may_use_and_off_sets_no_round_aside():
    from whisper_perf.errors import UsageError
    from whisper_perf.measure.contention import OTHERS_BUSY_CORES, parse_busy_threshold

    assert Load(10.0, 1.2, 0.76, 0.0, 2.4).busy and Load(10.0, 1.2, 0.26, 0.0, 2.4).busy_cores == OTHERS_BUSY_CORES
    assert not Load(10.0, 1.2, 0.76, 0.0, 2.4, busy_cores=1.0).busy  # a looser threshold
    assert Load(10.0, 1.2, 0.01, 0.2, 2.4, busy_cores=1.0).busy  # the hypervisor's steal still counts
    off = Load(10.0, 1.2, 1.9, 0.5, 2.4, busy_cores=None)
    assert not off.busy and off.as_dict()["busy_cores"] is None  # the results file says the check was off
    assert [parse_busy_threshold(t) for t in ("off", "OFF", "0.5", "0")] == [None, None, 0.5, 0.0]
    for bad in ("-1", "lots", "nan"):
        with pytest.raises(UsageError, match="--busy-threshold is the cores"):
            parse_busy_threshold(bad)


QUIET = Load(10.0, 1.9, 0.01, 0.0, 0.5)
BUSY = Load(10.0, 1.2, 0.76, 0.0, 2.4)


def _measurement(loads, compiled=1.0, probes=None):
    m = Measurement("tiny.en", "compiled", "eager", "short", 10.0, {}, {"a": "hello", "b": "world"})
    for r, load in enumerate(loads):
        slow = 3.0 if load.busy else 1.0  # the busy rounds are distorted
        for target, seconds in ((m.passes, compiled * slow), (m.reference_passes, 1.1)):
            p = Pass("x")
            for u, text in m.reference_texts.items():
                p.samples.append(Sample(u, seconds * (1 + 0.01 * r), 2))
                p.transcripts[u] = Transcript([1, 2], text)
            target.append(p)
        m.loads.append(load)
    m.probes = list(probes or [])
    return m


def test_busy_rounds_are_left_out_of_the_numbers():
    s = summarize(_measurement([QUIET, BUSY, QUIET, QUIET]))
    assert s.rounds_used == 3 and s.busy_rounds == 1 and s.unreliable is None
    assert s.speedup.estimate == pytest.approx(1.1)  # the 3x-slowed busy round is not in it


def test_too_few_quiet_rounds_make_the_verdict_unreliable_with_evidence():
    from whisper_perf.judge.baselines import Entry, Tolerances

    s = summarize(_measurement([BUSY, QUIET, BUSY]))
    assert s.unreliable and "busy in 2 of 3 rounds, only 1 quiet" in s.unreliable
    assert "other processes used 0.76 cores" in s.unreliable
    entry = Entry("tiny.en", "compiled", {}, seconds=1.0, wer=None, speedup=1.1)
    verdict = judge_speedup(s.speedup, entry, Tolerances(), False, "cmd", s.unreliable)
    assert verdict.outcome is Outcome.UNRELIABLE and verdict.message.startswith("unreliable: machine busy")
    assert judge_time(Interval(3.0, 2.9, 3.1, 0.95), 1.0, 0.1, "cmd", unreliable=s.unreliable).outcome \
        is Outcome.UNRELIABLE


def test_machine_probe_of_the_rounds_used_is_averaged_and_adjusts_or_withholds_time_verdicts():
    from whisper_perf.measure.machine_speed import adjustment

    s = summarize(_measurement([QUIET, BUSY, QUIET, QUIET], probes=[[4.0, 6.0], [20.0, 30.0], [5.0, 5.0], [5.0, 5.0]]))
    assert s.machine_probe_ms == 5.0  # mean over the calls of the quiet rounds; the busy round left out
    assert s.as_dict()["machine_probe_ms"] == 5.0
    assert summarize(_measurement([QUIET, QUIET])).machine_probe_ms is None  # no probe, no claim

    assert adjustment(None, 5.0) == (None, None) and adjustment(5.0, None) == (None, None)  # compare as measured
    factor, why = adjustment(6.0, 5.0)  # the machine runs the probe 20% slower than at the recording
    assert factor == pytest.approx(5 / 6) and why is None
    factor, why = adjustment(7.0, 5.0)  # 40% slower: beyond what is adjusted for
    assert factor is None and why.startswith("machine speed changed")
    assert "took 7.00 ms in this run, 5.00 ms when the baseline was recorded (40% slower, more than the 30%" in why
    assert "(40% faster" in adjustment(3.0, 5.0)[1]

    # 1.2 s measured while the machine ran 20% slow is 1.0 s at the recording's speed: within 10% of 1.0 s.
    slow_machine = judge_time(Interval(1.2, 1.18, 1.22, 0.95), 1.0, 0.1, "cmd", speed_factor=5 / 6)
    assert slow_machine.outcome is Outcome.PASS
    assert "at the recording's machine speed (x0.833; as measured 1.200 s [1.180, 1.220]" in slow_machine.message
    # The same seconds on a machine at the recording's speed are a 20% regression.
    assert judge_time(Interval(1.2, 1.18, 1.22, 0.95), 1.0, 0.1, "cmd", speed_factor=1.0).outcome \
        is Outcome.REGRESSION
    verdict = judge_time(Interval(3.0, 2.9, 3.1, 0.95), 1.0, 0.1, "cmd", unreliable=why)
    assert verdict.outcome is Outcome.UNRELIABLE and "machine speed changed" in verdict.message


def test_machine_probe_is_a_real_measurement():
    from whisper_perf.measure.machine_speed import probe_ms

    first, second = probe_ms(), probe_ms()
    assert first > 0 and second > 0 and first != second  # timed, not a constant

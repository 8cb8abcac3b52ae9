"""Verdicts against the baseline of this hardware: compiled speedup, time, and WER parity.

Each test judges the measurement that test_generate made; see README "Reading a verdict"."""

import pytest
import torch
import transformers

from whisper_perf.architectures import is_random
from whisper_perf.variants import COMPILED_VARIANTS
from whisper_perf.verdicts import Outcome, judge_speedup, judge_times, judge_wer


@pytest.fixture
def anomaly(baseline, request):
    """A known anomaly of this entry that applies to the installed versions turns the speedup
    test into a strict expected failure: it XFAILs while the anomaly reproduces, and fails
    (XPASS strict) once it does not."""
    entry, _ = baseline
    if entry.anomaly and entry.anomaly.applies(torch.__version__, transformers.__version__):
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            f"known anomaly: {entry.anomaly.reason} {entry.anomaly.reference}. If this test XPASSes, the anomaly "
            "no longer reproduces; review and re-record the baseline.")))
        return entry.anomaly
    return None


def _report(add_verdict, variant, verdict):
    add_verdict(variant, verdict)
    if verdict.outcome is Outcome.UNRELIABLE:
        pytest.skip(verdict.message)  # not judged: says what it could not see, raises no false alarm


@pytest.mark.variants(COMPILED_VARIANTS)
def test_speedup(summary, baseline, anomaly, variant, record_hint, add_verdict):
    entry, tolerances = baseline
    verdict = judge_speedup(summary.speedup, entry, tolerances, anomaly is not None, record_hint,
                            summary.unreliable)
    _report(add_verdict, variant, verdict)
    assert verdict.outcome not in (Outcome.REGRESSION, Outcome.KNOWN_ANOMALY), verdict.message


def test_time(summary, baseline, variant, record_hint, add_verdict):
    """The variant's own summed time against the baseline, and its eager reference's (catches eager
    and compiled slowing alike, which the speedup cannot see).  On a CPU, at the machine speed of
    the recording (see whisper_perf.machine_speed); not judged on a busy machine, nor when the speed
    moved too far to adjust for."""
    entry, tolerances = baseline
    verdicts = judge_times(summary, entry, tolerances, record_hint, compiled=variant.spec.compiled,
                           reference=variant.spec.reference, on_cuda=variant.hardware.is_cuda)
    for verdict in verdicts:
        add_verdict(variant, verdict)
    failed = [v.message for v in verdicts if v.outcome is Outcome.REGRESSION]
    assert not failed, "; ".join(failed)
    if verdicts[0].outcome is Outcome.UNRELIABLE:
        pytest.skip(verdicts[0].message)


def test_wer_parity(summary, baseline_or_none, variant, add_verdict):
    """Compiled variants transcribe like their eager build, and every variant like its baseline.
    Not for random weights (--model arch:NAME), whose transcripts mean nothing."""
    entry, tolerances = baseline_or_none
    not_applicable = (f"WER not applicable: {variant.model_name} has random weights"
                      if is_random(variant.model_name) else None)
    verdict = judge_wer(summary.wer, summary.reference_wer, entry, tolerances, not_applicable, summary.exact_match)
    _report(add_verdict, variant, verdict)
    if not_applicable:
        pytest.skip(verdict.message)
    assert verdict.outcome is not Outcome.REGRESSION, (
        f"{verdict.message}; {summary.exact_match:.0%} of utterances have the same token ids as eager"
        if summary.exact_match is not None else verdict.message)
    if entry is None and summary.reference_wer is None:
        pytest.skip("no baseline WER to compare with, and no eager reference (eager variant)")

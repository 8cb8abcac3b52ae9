"""Verdicts against the baseline of this hardware: compiled speedup, time, and WER parity.

Each test judges the measurement that test_generate made; see README "Reading a verdict"."""

import pytest
import torch
import transformers

from whisper_perf.variants import COMPILED_VARIANTS
from whisper_perf.verdicts import Outcome, judge_speedup, judge_time, judge_wer


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


def _report(pytestconfig, variant, verdict):
    pytestconfig.whisper_perf.verdicts.append((variant.model_name, variant.name, verdict))


@pytest.mark.variants(COMPILED_VARIANTS)
def test_speedup(summary, baseline, anomaly, variant, record_hint, pytestconfig):
    entry, tolerances = baseline
    verdict = judge_speedup(summary.speedup, entry, tolerances, anomaly is not None, record_hint)
    _report(pytestconfig, variant, verdict)
    assert verdict.outcome not in (Outcome.REGRESSION, Outcome.KNOWN_ANOMALY), verdict.message


def test_time(summary, baseline, variant, record_hint, pytestconfig):
    """The variant's own summed time against the baseline (catches eager and compiled slowing alike)."""
    entry, tolerances = baseline
    check = "compiled time" if variant.spec.compiled else "eager time"
    verdict = judge_time(summary.seconds, entry.seconds, tolerances.compiled_time, record_hint, check)
    _report(pytestconfig, variant, verdict)
    assert verdict.outcome is not Outcome.REGRESSION, verdict.message


def test_wer_parity(summary, baseline_or_none, variant, pytestconfig):
    """Compiled variants transcribe like their eager build, and every variant like its baseline."""
    entry, tolerances = baseline_or_none
    verdict = judge_wer(summary.wer, summary.reference_wer, entry, tolerances)
    _report(pytestconfig, variant, verdict)
    assert verdict.outcome is not Outcome.REGRESSION, (
        f"{verdict.message}; {summary.exact_match:.0%} of utterances have the same token ids as eager"
        if summary.exact_match is not None else verdict.message)
    if entry is None and summary.reference_wer is None:
        pytest.skip("no baseline WER to compare with, and no eager reference (eager variant)")

"""Verdicts: compiled speedup, time, and WER parity.  Judged on every machine against the
variant's own eager build; where this hardware has a baseline, against it too.

Each test judges the measurement that test_generate made; see docs/verdicts.md, "Reading a verdict"."""

import pytest
import torch
import transformers

from whisper_perf.build.variant_specs import COMPILED_VARIANTS
from whisper_perf.judge.baselines import anomaly_applying
from whisper_perf.judge.verdicts import Outcome, speedup_verdicts, time_verdicts, wer_verdict


@pytest.fixture
def anomaly(baseline_or_none, request):
    """A known anomaly of this entry that applies to the installed versions turns the speedup
    test into a strict expected failure: it XFAILs while the anomaly reproduces, and fails
    (XPASS strict) once it does not."""
    entry, _ = baseline_or_none
    found = anomaly_applying(entry, torch.__version__, transformers.__version__)
    if found:
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            f"known anomaly: {found.reason} {found.reference}. If this test XPASSes, the anomaly "
            "no longer reproduces; review and re-record the baseline.")))
    return found


def _report(add_verdict, variant, verdict):
    add_verdict(variant, verdict)
    if verdict.outcome is Outcome.UNRELIABLE:
        pytest.skip(verdict.message)  # not judged: says what it could not see, raises no false alarm


@pytest.mark.variants(COMPILED_VARIANTS)
def test_speedup(summary, baseline_or_none, anomaly, missing_baseline, variant, record_hint, add_verdict):
    """Not credibly slower than its own eager build, on every machine; and, where this hardware
    has a baseline, within its tolerance of the baseline's speedup.  A declared anomaly (compiled
    slower than eager, expected) replaces both: see ``anomaly``."""
    entry, tolerances = baseline_or_none
    verdicts = speedup_verdicts(summary, entry, tolerances, anomaly is not None, record_hint, missing_baseline)
    for verdict in verdicts:
        add_verdict(variant, verdict)
    failed = [v.message for v in verdicts if v.outcome in (Outcome.REGRESSION, Outcome.KNOWN_ANOMALY)]
    assert not failed, "; ".join(failed)
    if verdicts[0].outcome is Outcome.UNRELIABLE:
        pytest.skip(verdicts[0].message)  # not judged: says what it could not see, raises no false alarm


def test_time(summary, baseline_or_none, missing_baseline, variant, record_hint, add_verdict):
    """The variant's own summed time against the baseline, and its eager reference's (catches eager
    and compiled slowing alike, which the speedup cannot see).  On a CPU, at the machine speed of
    the recording (see whisper_perf.measure.machine_speed); not judged on a busy machine, nor when the speed
    moved too far to adjust for, nor without a baseline (counted as not judged)."""
    entry, tolerances = baseline_or_none
    verdicts = time_verdicts(summary, entry, tolerances, record_hint, missing_baseline, compiled=variant.spec.compiled,
                             reference=variant.spec.reference, on_cuda=variant.hardware.is_cuda,
                             device_name=variant.hardware.device_name)
    for verdict in verdicts:
        add_verdict(variant, verdict)
    if entry is None:
        pytest.skip(missing_baseline)
    failed = [v.message for v in verdicts if v.outcome is Outcome.REGRESSION]
    assert not failed, "; ".join(failed)
    if verdicts[0].outcome is Outcome.UNRELIABLE:
        pytest.skip(verdicts[0].message)


def test_wer_parity(summary, baseline_or_none, variant, add_verdict):
    """Compiled variants transcribe like their eager build, and every variant like its baseline.
    Not for random weights (--model arch:NAME), whose transcripts mean nothing."""
    entry, tolerances = baseline_or_none
    verdict = wer_verdict(summary, entry, tolerances, variant.model_name)
    _report(add_verdict, variant, verdict)
    if verdict.outcome in (Outcome.NOT_APPLICABLE, Outcome.NO_BASELINE):  # nothing to compare: not judged
        pytest.skip(verdict.message)
    assert verdict.outcome is not Outcome.REGRESSION, (
        f"{verdict.message}; {summary.exact_match:.0%} of utterances have the same token ids as eager"
        if summary.exact_match is not None else verdict.message)

"""Time generate() of every variant over the audio set; compiled variants in alternation with
their eager reference (one reference pass before each timed pass)."""

import pytest

from whisper_perf.timing import Measurement, run_pass


def test_generate(benchmark, variant, reference_variant, short_audio, long_audio, pytestconfig):
    options = pytestconfig.whisper_perf
    audio = long_audio if variant.spec.long_form else short_audio
    reference = reference_variant
    measurement = Measurement(
        model=variant.model_name, variant=variant.name, reference=reference and reference.name,
        audio_set=audio.name, audio_seconds=audio.seconds, setup=variant.describe(),
        reference_texts={u.id: u.text for u in audio.utterances},
        first_call_seconds=variant.first_call_seconds, warmup_seconds=variant.warmup_seconds)

    def reference_pass():
        measurement.reference_passes.append(run_pass(reference, audio))

    def timed_pass():
        measurement.passes.append(run_pass(variant, audio))

    benchmark.pedantic(timed_pass, setup=reference_pass if reference else None,
                       rounds=options.rounds, iterations=1, warmup_rounds=0)
    options.measurements.append(measurement)
    benchmark.extra_info.update(setup=measurement.setup, audio_set=audio.name, audio_seconds=audio.seconds,
                                utterances=len(audio), first_call_seconds=variant.first_call_seconds,
                                samples=[[(s.utterance, s.seconds, s.tokens) for s in p.samples]
                                         for p in measurement.passes])

    budget = options.settings.max_new_tokens
    last = measurement.passes[-1]
    empty = [uid for uid, t in last.transcripts.items() if not t.text.strip()]
    assert not empty, f"{variant.name} transcribed nothing for {empty}"
    if not variant.spec.long_form:
        over = [s.utterance for s in last.samples if s.tokens > budget]
        assert not over, f"{variant.name} generated more than {budget} tokens for {over}"

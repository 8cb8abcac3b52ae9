"""Time generate() of every variant over the audio set with pytest-benchmark; compiled variants
interleaved per utterance with their eager reference (see whisper_perf.measure.timing)."""

from whisper_perf.build.variants import free_memory
from whisper_perf.measure.timing import measure


def test_generate(benchmark, variant, reference_variant, audio_for, adaptive_rounds, run_config, run_session):
    try:
        m = measure(variant, reference_variant, audio_for, run_config.rounds, pedantic=benchmark.pedantic,
                    extra_rounds=run_config.busy_retries, progress=run_session.progress, adaptive=adaptive_rounds,
                    busy_cores=run_config.busy_threshold)
    except Exception as exc:  # e.g. out of memory: recorded, so that the variant's other tests fail fast
        free_memory(variant.hardware)
        run_session.add_failure(variant.model_name, variant.name, "timing",
                                f"{variant.model_name}/{variant.name}: timing failed: {type(exc).__name__}: {exc}")
        raise
    run_session.add_measurement((variant.model_name, variant.name), m)
    # pytest-benchmark's rounds are single generate() calls; the full record is in the results file.
    benchmark.extra_info.update(
        setup=m.setup, audio_set=m.audio_set, audio_seconds=m.audio_seconds, utterances=len(audio_for),
        first_call_seconds=m.first_call_seconds, reference=m.reference, busy_rounds=m.busy_rounds,
        samples=[[(s.utterance, s.seconds, s.tokens) for s in p.samples] for p in m.passes],
        reference_samples=[[(s.utterance, s.seconds, s.tokens) for s in p.samples] for p in m.reference_passes])

    last = m.passes[-1]
    empty = [uid for uid, t in last.transcripts.items() if not t.text.strip()]
    assert not empty, f"{variant.name} transcribed nothing for {empty}"
    if not variant.spec.long_form:
        budget = run_config.settings.max_new_tokens
        over = [uid for uid, t in last.transcripts.items() if len(t.token_ids) > budget]
        assert not over, f"{variant.name} generated more than {budget} tokens for {over}"

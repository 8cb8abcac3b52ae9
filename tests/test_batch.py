"""--batch N: N utterances per short-form generate() call.  The batches of a set, eager at
batch N against batch 1 on the committed set (real tiny.en), and the suite end to end with the
prebuilt static cache sized for N."""

import json
from pathlib import Path

import pytest
from suite_runs import ran_through, run_suite

from whisper_perf.build.variant_specs import VARIANTS
from whisper_perf.build.variants import build_variant
from whisper_perf.config import generation_settings
from whisper_perf.errors import UsageError
from whisper_perf.inputs.audio import AudioSet
from whisper_perf.inputs.generation import GenerationSettings
from whisper_perf.measure.timing import run_pass
from whisper_perf.record.report import markdown_report
from whisper_perf.record.results import load_run

ROOT = Path(__file__).resolve().parents[1]


def test_the_last_batch_is_topped_up_from_the_start_and_only_scored_once(short_set):
    five = AudioSet("s", short_set.utterances[:5])
    units = five.batched(2).units
    assert [u.id for u in units] == ["utt_000+utt_001", "utt_002+utt_003", "utt_004+utt_000"]
    assert [[m.id for m in u.scored] for u in units] == [["utt_000", "utt_001"], ["utt_002", "utt_003"], ["utt_004"]]
    assert five.units == five.utterances  # batch 1: one utterance per call, as before
    assert five.spread(3).batch_size == 1 and five.batched(2).spread(4).batch_size == 2


def test_a_batch_larger_than_the_set_or_below_one_is_refused_naming_the_option(short_set):
    with pytest.raises(UsageError, match=r"--batch 6 is more than the 5 utterance\(s\) of s"):
        AudioSet("s", short_set.utterances[:5]).batched(6)
    options = {"--max-new-tokens": 128, "--fixed-work": False, "--batch": 0}
    with pytest.raises(UsageError, match="--batch must be at least 1"):
        generation_settings(options.get)
    assert generation_settings({**options, "--batch": 4}.get).batch_size == 4


def test_eager_at_batch_n_transcribes_like_batch_1(tiny_en, short_set, cpu):
    """Nothing in a short-form batch is padded (every utterance's features are 30 s of frames, every
    decoder prompt the same): batch 5 must give batch 1's token ids for every utterance, the
    topped-up last batch included."""
    source, model, processor = tiny_en
    audio = short_set.spread(12)
    passes = {}
    for n in (1, 5):
        eager = build_variant(VARIANTS["eager"], "tiny.en", model, processor, cpu, GenerationSettings(batch_size=n))
        passes[n] = run_pass(eager, audio.batched(n))
    assert len(passes[5].samples) == 3 and len(passes[5].transcripts) == 12
    assert sum(s.tokens for s in passes[5].samples) > sum(s.tokens for s in passes[1].samples)  # the top-ups' work
    differ = [u.id for u in audio.utterances
              if passes[5].transcripts[u.id].token_ids != passes[1].transcripts[u.id].token_ids]
    assert not differ, differ


@pytest.mark.parametrize("name", ["compiled", "compiled-static"])
def test_the_other_compiled_variants_transcribe_a_batch_like_eager_at_batch_1(tiny_en, cpu, short_set, name):
    """Every short-form variant takes --batch (compiled-static-prebuilt: the suite test below):
    a compiled build for batch 2 gives each utterance of the batch eager batch 1's token ids."""
    source, model, processor = tiny_en
    audio = short_set.spread(2)
    settings = GenerationSettings(max_new_tokens=16, batch_size=2)
    eager = build_variant(VARIANTS["eager"], source.name, model, processor, cpu, GenerationSettings(max_new_tokens=16))
    compiled = build_variant(VARIANTS[name], source.name, model, processor, cpu, settings, audio.batched(2).units[0])
    alone, together = run_pass(eager, audio.batched(1)), run_pass(compiled, audio.batched(2))
    assert len(together.samples) == 1 and together.samples[0].tokens > alone.samples[0].tokens
    assert {u: t.token_ids for u, t in together.transcripts.items()} == \
           {u: t.token_ids for u, t in alone.transcripts.items()}


def test_the_suite_times_batches_with_a_prebuilt_cache_sized_for_them(tmp_path):
    """compiled-static-prebuilt at --batch 2 over 3 utterances: two calls per round (the second
    topped up), no recompile while timed, WER per utterance, the protocol keyed by batch size."""
    results = tmp_path / "results"
    result = run_suite("--variant", "compiled-static-prebuilt", "--batch", "2", "--limit", "3", "--rounds", "2",
                       "--results-dir", str(results), "--baselines", str(tmp_path / "none"))
    assert ran_through(result, "compiled-static-prebuilt"), result.output[-4000:]
    (run_file,) = results.glob("*/*.json")
    m = next(x for x in json.loads(run_file.read_text())["measurements"] if x["variant"] == "compiled-static-prebuilt")
    assert m["setup"]["batch_size"] == 2 and m["utterances"] == 3
    assert [[s[0] for s in p] for p in m["samples"]] == [["utt_000+utt_018", "utt_037+utt_000"]] * 2
    assert sorted(m["transcripts"]) == ["utt_000", "utt_018", "utt_037"]
    timed = m["diagnostics"]["timed_compile"]
    assert timed["recompiles"] == 0 and timed["frames_compiled"] == 0
    assert m["summary"]["exact_match"] == 1.0  # compiled at batch 2 transcribes like eager at batch 2
    assert "batch_size=2" in result.output and "--batch 2" in result.output  # the protocol and the record command
    assert "| 3, batch 2 |" in run_file.with_suffix(".md").read_text()


def test_the_diagnostics_of_a_batched_run_name_its_batch_size():
    """Peak memory, phases and the profiled calls are per call of N utterances: a batched run's
    report names N in those tables too (a real run's results file, read as if measured at batch 2)."""
    run = load_run(ROOT / "docs" / "measurements" / "cpu-x86_64-avx512-intel-xeon-t2"
                   / "20261207T131510.996740Z-14756.json")
    batch_1 = markdown_report(run)
    for m in run.measurements:
        m.setup["batch_size"] = 2
    batched = markdown_report(run)
    for label in ("| tiny.en | compiled (batch 2) |", "| tiny.en | eager+math (reference, batch 2) |"):
        assert batched.count(label) >= 2, label  # the phases and the device-time tables (peak memory: variants)
    assert "(batch 2)" not in batch_1 and "| tiny.en | eager+math (reference) |" in batch_1


def test_a_run_with_a_batch_larger_than_its_set_exits_4_naming_the_option(tmp_path):
    result = run_suite("--variant", "eager", "--batch", "4", "--limit", "3", "--rounds", "1",
                       "--baselines", str(tmp_path / "none"))
    assert result.returncode == 4, result.output[-3000:]
    assert "--batch 4 is more than the 3 utterance(s) of short: give a batch size of at most 3" in result.output

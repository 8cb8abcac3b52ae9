"""``--model arch:NAME``: Whisper models of the published architectures with seeded random weights,
built for real (torch, transformers) on the CPU."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from whisper_perf.build.variant_specs import VARIANTS
from whisper_perf.build.variants import build_variant
from whisper_perf.errors import UsageError
from whisper_perf.inputs import architectures
from whisper_perf.inputs.audio import AudioSet
from whisper_perf.inputs.generation import GenerationSettings, configure, text_token_ids
from whisper_perf.inputs.models import default_dtype, load_model, resolve_model
from whisper_perf.record.baseline_recording import entry_from
from whisper_perf.judge.summary import summarize
from whisper_perf.judge.verdicts import judge_wer
from whisper_perf.measure.timing import measure
from whisper_perf.record.report import measurement_table
from whisper_perf.record.results import MeasurementRecord

ROOT = Path(__file__).resolve().parents[1]
DATA = json.loads((ROOT / "src" / "whisper_perf" / "data" / "architectures.json").read_text(encoding="utf-8"))
PUBLISHED = ["tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en", "large-v3",
             "large-v3-turbo"]
BUDGET = 16


def test_every_published_architecture_is_in_the_data_with_its_source():
    assert architectures.names() == PUBLISHED
    assert "openai/whisper" in DATA["source"] and "generation_config.json" in DATA["source"]


@pytest.mark.parametrize("name", PUBLISHED)
def test_config_matches_the_data_and_the_published_parameter_count(name):
    shape = DATA["models"][name]
    vocabulary = DATA["vocabularies"][shape["vocabulary"]]
    config = architectures.whisper_config(f"arch:{name}")
    for key, value in shape.items():
        if key not in ("vocabulary", "published_parameters_millions"):
            assert getattr(config, key) == value, key
    assert config.vocab_size == vocabulary["vocab_size"]
    assert config.num_mel_bins == (128 if name.startswith("large-v3") else 80)
    assert config.vocab_size == (51864 if name.endswith(".en") else 51866 if name.startswith("large-v3") else 51865)
    generation = architectures.generation_config(name)
    assert generation.eos_token_id == vocabulary["eos_token_id"] == config.eos_token_id
    assert generation.decoder_start_token_id == vocabulary["decoder_start_token_id"]
    assert generation.no_timestamps_token_id == vocabulary["no_timestamps_token_id"]
    assert generation.is_multilingual == (not name.endswith(".en"))
    # built on the meta device: shapes only, no memory
    millions = architectures.parameter_count(name) / 1e6
    published = shape["published_parameters_millions"]
    assert abs(millions - published) / published < 0.05, f"{name}: {millions:.1f}M, published {published}M"


def test_token_ids_agree_with_openai_whisper_tokenizer():
    """An independent source: openai-whisper's own tokenizer (the reference decoder of these tests)."""
    tokenizer = pytest.importorskip("whisper.tokenizer")
    for key, multilingual, languages in (("english", False, 99), ("multilingual", True, 99),
                                         ("multilingual-v3", True, 100)):
        ours, theirs = DATA["vocabularies"][key], tokenizer.get_tokenizer(multilingual, num_languages=languages)
        assert ours["vocab_size"] == theirs.encoding.n_vocab
        assert (ours["eos_token_id"], ours["decoder_start_token_id"], ours["no_timestamps_token_id"],
                ours["prev_sot_token_id"]) == (theirs.eot, theirs.sot, theirs.no_timestamps, theirs.sot_prev)
        if multilingual:
            assert ours["lang_to_id"]["<|en|>"] == theirs.to_language_token("en")
            assert ours["task_to_id"] == {"transcribe": theirs.transcribe, "translate": theirs.translate}
    v2, v3 = DATA["vocabularies"]["multilingual"], DATA["vocabularies"]["multilingual-v3"]
    assert v3["no_timestamps_token_id"] == v2["no_timestamps_token_id"] + 1  # v3: one more language token


def test_unknown_architecture_is_a_usage_error_listing_the_names():
    with pytest.raises(UsageError) as error:
        resolve_model("arch:large-v9")
    assert "arch:large-v9" in str(error.value)
    assert all(f"arch:{name}" in str(error.value) for name in PUBLISHED)


def test_resolves_as_random_weights_named_apart_from_real_ones():
    source = resolve_model("arch:large-v3-turbo")
    assert source.name == "arch:large-v3-turbo" and source.random_weights
    assert source.weights == "random (seed 0)" and not source.embedded
    assert not resolve_model("tiny.en").random_weights
    assert architectures.is_random(source.name) and not architectures.is_random("large-v3-turbo")


def test_seeded_weights_are_the_same_on_every_build():
    first, second = architectures.build_model("tiny"), architectures.build_model("tiny")
    other = architectures.build_model("tiny", seed=1)
    a, b, c = first.state_dict(), second.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.decoder.layers.0.fc1.weight"], c["model.decoder.layers.0.fc1.weight"])


@pytest.fixture(scope="module")
def one(short_set):
    return AudioSet("one", short_set.utterances[:1])  # compiling costs most here: one utterance is enough


@pytest.mark.parametrize("name", ["base"])  # (large-v3-turbo's shape: the next test)
def test_fixed_work_eager_and_compiled_generate_the_budget_with_the_same_ids(name, cpu, one):
    source = resolve_model(f"arch:{name}")
    model, processor = load_model(source, cpu.device)
    assert model.dtype == default_dtype(cpu.device) == torch.float32 and not model.training
    assert model.config._attn_implementation == "sdpa"
    assert processor.tokenizer.eos_token_id == model.generation_config.eos_token_id  # text tokens counted right
    settings = GenerationSettings(max_new_tokens=BUDGET, fixed_work=True)
    eager = build_variant(VARIANTS["eager"], source.name, model, processor, cpu, settings)  # no warm-up needed
    compiled = build_variant(VARIANTS["compiled"], source.name, model, processor, cpu, settings, one.utterances[0])
    m = measure(compiled, eager, one, rounds=1, extra_rounds=0)
    for variant_pass in (m.passes[-1], m.reference_passes[-1]):
        assert [s.tokens for s in variant_pass.samples] == [BUDGET]  # every generated token a text token
        assert all(t.text.strip() for t in variant_pass.transcripts.values())
    summary = summarize(m)
    assert summary.exact_match == 1.0  # compiled generates the same ids as eager
    table = measurement_table([MeasurementRecord.from_measurement(m, summary)])
    assert table.count("n/a (random weights)") == 2 and "100%" in table  # WER eager, WER; same ids
    verdict = judge_wer(summary.wer, summary.reference_wer, None, None, "random weights", summary.exact_match)
    assert verdict.message.startswith("n/a (random weights)") and "100%" in verdict.message
    entry = entry_from(m, summary, {"torch": torch.__version__}).as_dict()  # as --record writes it
    assert entry["speedup"] > 0 and "wer" not in entry and "reference_wer" not in entry


def test_large_v3_turbo_builds_and_generates_on_the_cpu(cpu, short_set):
    """The L4 anomaly's shape: 32 encoder layers, 4 decoder layers, 128 mel bins, fp32 here."""
    source = resolve_model("arch:large-v3-turbo")
    model, processor = load_model(source, cpu.device)
    assert len(model.model.encoder.layers) == 32 and len(model.model.decoder.layers) == 4
    assert model.dtype == torch.float32 and model.proj_out.weight.data_ptr() == \
        model.model.decoder.embed_tokens.weight.data_ptr()
    utterance = min(short_set.utterances, key=lambda u: u.seconds)
    features = processor(utterance.audio, sampling_rate=16000, return_tensors="pt").input_features
    assert features.shape[1] == 128
    kwargs = configure(model, GenerationSettings(max_new_tokens=4, fixed_work=True))
    with torch.inference_mode():
        output = model.generate(features, **kwargs)[0]
    assert len(text_token_ids(output, processor.tokenizer.eos_token_id)) == 4


@pytest.mark.parametrize("args, message", [
    (["--model", "arch:tiny"], "Add --fixed-work"),
    (["--model", "arch:large-v9", "--fixed-work"], "unknown architecture"),
])
def test_refused_at_configure_time_before_any_model_loads(args, message, tmp_path):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "perf_tests", *args, "-p", "no:cacheprovider",
                           "--results-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 4, output
    assert message in output and args[1] in output
    assert "collected" not in output  # failed while configuring: nothing collected, nothing loaded
    assert time.perf_counter() - start < 120

"""The embedded tiny.en conversion: structure, cache, failure modes, and transcripts checked
against OpenAI's own decoder loaded independently from the same CTranslate2 tensors."""

import os

import numpy as np
import pytest
import torch

from whisper_perf.inputs import convert
from whisper_perf.inputs.convert import ConversionError, converted_embedded_model, embedded_source, read_ct2
from whisper_perf.inputs.generation import GenerationSettings, configure, text_token_ids
from whisper_perf.measure.accuracy import wer


def test_converted_model_has_tiny_en_shape_and_tied_output(tiny_en):
    _, model, processor = tiny_en
    c = model.config
    assert (c.d_model, c.encoder_layers, c.decoder_layers, c.encoder_attention_heads) == (384, 4, 4, 6)
    assert (c.vocab_size, c.num_mel_bins, c.max_target_positions) == (51864, 80, 448)
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert len(processor.tokenizer) == 51864
    assert processor.tokenizer.convert_ids_to_tokens([50257, 50362, 50363, 51863]) == [
        "<|startoftranscript|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>"]


def test_generation_config_comes_from_the_source_and_has_no_forced_ids(tiny_en):
    import json

    _, model, _ = tiny_en
    meta = json.loads((embedded_source() / "config.json").read_text())
    gc = model.generation_config
    assert gc.suppress_tokens == meta["suppress_ids"]
    assert gc.begin_suppress_tokens == meta["suppress_ids_begin"]
    assert gc.alignment_heads == meta["alignment_heads"]
    assert gc.no_timestamps_token_id == 50362 and not gc.is_multilingual
    assert getattr(gc, "forced_decoder_ids", None) is None


def test_weights_equal_the_ctranslate2_tensors(tiny_en):
    _, model, _ = tiny_en
    v = read_ct2(embedded_source() / "model.bin")
    sd = model.state_dict()
    qkv = torch.from_numpy(np.array(v["decoder/layer_2/self_attention/linear_0/weight"], dtype=np.float32))
    assert torch.equal(sd["model.decoder.layers.2.self_attn.k_proj.weight"], qkv[384:768])
    kv = torch.from_numpy(np.array(v["decoder/layer_3/attention/linear_1/bias"], dtype=np.float32))
    assert torch.equal(sd["model.decoder.layers.3.encoder_attn.v_proj.bias"], kv[384:])
    assert torch.equal(sd["model.encoder.conv2.weight"],
                       torch.from_numpy(np.array(v["encoder/conv2/weight"], dtype=np.float32)))


def test_conversion_is_cached_by_source_hash(tmp_path, monkeypatch):
    first = converted_embedded_model(cache=tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns

    def must_not_rebuild(*args):
        raise AssertionError("a cached conversion was rebuilt")

    monkeypatch.setattr(convert, "build_checkpoint", must_not_rebuild)
    assert converted_embedded_model(cache=tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert convert._sha256(embedded_source() / "model.bin")[:16] in first.name


def test_failed_conversion_leaves_nothing_behind(tmp_path, monkeypatch):
    def crash(source, out_dir):
        (out_dir / "config.json").write_text("{}")  # half-written output
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "build_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        converted_embedded_model(cache=tmp_path)
    assert os.listdir(tmp_path / "embedded") == []


def test_truncated_model_file_is_a_clear_error(tmp_path):
    data = (embedded_source() / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(ConversionError, match="model.bin: not a readable CTranslate2 model"):
        read_ct2(tmp_path / "model.bin")


def _hf_greedy(model, processor, utterances):
    kwargs = configure(model, GenerationSettings(max_new_tokens=128))
    texts = []
    with torch.inference_mode():
        for u in utterances:
            features = processor(u.audio, sampling_rate=16000, return_tensors="pt").input_features
            ids = text_token_ids(model.generate(features, **kwargs)[0], processor.tokenizer.eos_token_id)
            texts.append(processor.tokenizer.decode(ids))
    return texts


@pytest.fixture(scope="module")
def half_set(short_set):
    """Every other committed utterance: every voice and length, in half the time."""
    return short_set.spread((len(short_set) + 1) // 2)


@pytest.fixture(scope="module")
def eager_transcripts(tiny_en, half_set):
    _, model, processor = tiny_en
    return _hf_greedy(model, processor, half_set.utterances)


def test_transcribes_the_committed_set_well(half_set, eager_transcripts):
    # OpenAI reports tiny.en at ~5-6% WER on LibriSpeech clean; synthetic voices are harder.
    score = wer([u.text for u in half_set.utterances], eager_transcripts)
    print(f"tiny.en WER on {len(half_set)} committed utterances: {100 * score:.1f}%")
    assert score < 0.12


def test_greedy_text_equals_openai_whisper_decode(half_set, eager_transcripts):
    pytest.importorskip("whisper", reason="openai-whisper is installed by `nox -s tests`")
    from openai_reference import load_openai_tiny_en, openai_greedy_text

    whisper, reference_model = load_openai_tiny_en()
    picks = range(0, len(half_set), max(1, len(half_set) // 12))
    with torch.inference_mode():
        theirs = [openai_greedy_text(whisper, reference_model, half_set.utterances[i].audio) for i in picks]
    ours = [eager_transcripts[i] for i in picks]
    assert [t.strip() for t in ours] == [t.strip() for t in theirs]

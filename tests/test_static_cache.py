"""The static-cache variant that works with CUDA graphs on current transformers, and each
compiled variant's own recompile budget: real tiny.en, real torch.compile."""

import pytest
import torch
import torch._dynamo

from whisper_perf.build.compile_health import CompileWatch
from whisper_perf.build.variant_specs import VARIANTS, reference_spec
from whisper_perf.build.variants import build_variant, own_code
from whisper_perf.inputs.audio import AudioSet
from whisper_perf.inputs.generation import GenerationSettings
from whisper_perf.measure.timing import measure, run_pass


@pytest.fixture(scope="module")
def few(short_set):
    return AudioSet("few", short_set.utterances[:3])


def _tensors(cache, parts=("self_attention_cache", "cross_attention_cache")):
    for part in (getattr(cache, name) for name in parts):
        if hasattr(part, "layers"):
            for layer in part.layers:
                yield layer.keys
                yield layer.values
        else:  # transformers before 4.56: one list of keys and one of values
            yield from part.key_cache
            yield from part.value_cache


def test_prebuilt_cache_is_allocated_before_any_call_and_reused_unchanged(tiny_en, cpu, few):
    source, model, processor = tiny_en
    settings = GenerationSettings(max_new_tokens=32)
    spec = VARIANTS["compiled-static-prebuilt"]
    assert reference_spec(spec).name == "eager+math" and not spec.static_cache
    variant = build_variant(spec, source.name, model, processor, cpu, settings)  # no warm-up yet
    cache = variant.prebuilt.cache
    tensors = list(_tensors(cache))
    # allocated outside any compiled region, on the model's device and dtype, marked static
    assert len(tensors) == 4 * model.config.decoder_layers
    assert all(t.dtype == model.dtype and t.device == model.device for t in tensors)
    assert all(getattr(t, "_dynamo_static_input_type", None) for t in tensors)
    assert next(_tensors(cache, ["self_attention_cache"])).shape[2] >= 32 + 2
    assert next(_tensors(cache, ["cross_attention_cache"])).shape[2] == model.config.max_source_positions
    addresses = [t.data_ptr() for t in tensors]
    variant.warm_up(few.utterances[0])
    eager = build_variant(VARIANTS["eager"], source.name, model, processor, cpu, settings)
    m = measure(variant, eager, few, rounds=1)
    # the same cache at the same addresses all along, reset before each call, nothing recompiled
    assert [t.data_ptr() for t in _tensors(variant.prebuilt.cache)] == addresses
    assert m.timed_compile.recompiles == 0 and m.timed_compile.frames_compiled == 0
    assert [t.token_ids for t in m.passes[0].transcripts.values()] == \
           [t.token_ids for t in m.reference_passes[0].transcripts.values()]
    assert all(s.tokens > 0 for s in m.passes[0].samples)


def test_prebuilt_cache_has_a_layer_per_decoder_layer():
    """Whisper's config maps num_hidden_layers to the encoder's layers: large-v3-turbo has 32
    of them and 4 decoder layers, and the cache holds 4 (not 32, eight times the memory)."""
    from types import SimpleNamespace

    from whisper_perf.build.static_cache import build_cache
    from whisper_perf.inputs.architectures import whisper_config

    config = whisper_config("large-v3-turbo")
    cache = build_cache(SimpleNamespace(config=config, dtype=torch.float16, device=torch.device("cpu")), 16)
    tensors = list(_tensors(cache))
    assert (config.encoder_layers, config.decoder_layers) == (32, 4) and len(tensors) == 4 * 4
    assert all(t.dtype == torch.float16 for t in tensors)
    assert next(_tensors(cache, ["cross_attention_cache"])).shape == (1, 20, 1500, 64)


def test_pipeline_over_the_prebuilt_cache_transcribes_like_the_eager_pipeline(tiny_en, cpu, long_set):
    """Over the first 40 s of the long clip (two chunks: the pipeline's chunking and its cache
    resets between chunks, at a fraction of the whole clip's cost)."""
    from whisper_perf.inputs.audio import SAMPLE_RATE, Utterance

    source, model, processor = tiny_en
    settings = GenerationSettings(max_new_tokens=64)
    whole = long_set.utterances[0]
    clip = AudioSet("40 s", [Utterance(whole.id, whole.audio[: 40 * SAMPLE_RATE], whole.text)])
    eager = build_variant(VARIANTS["pipeline"], source.name, model, processor, cpu, settings)
    compiled = build_variant(VARIANTS["pipeline-compiled-prebuilt"], source.name, model, processor, cpu, settings,
                             clip.utterances[0])
    with CompileWatch() as watch:
        timed = run_pass(compiled, clip)
    assert watch.health.frames_compiled == 0
    assert timed.transcripts[clip.utterances[0].id].text == run_pass(eager, clip).transcripts[clip.utterances[0].id].text


def test_each_compiled_build_has_its_own_recompile_budget():
    """Two builds of the same method, each compiled for two input shapes of its own, under a
    recompile limit of 2: over a shared code object the fourth compile hits the limit (a hard
    failure under fullgraph=True); with a code object of its own, each build stays within it."""

    class Step(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.gelu(x) * 2

    def compile_builds(prepare):
        for build, module in enumerate([Step(), Step()]):
            compiled = torch.compile(prepare(module.forward, build), fullgraph=True)
            for n in (3 + 4 * build, 5 + 4 * build):
                assert torch.equal(compiled(torch.ones(n)), module(torch.ones(n)))

    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    with torch._dynamo.config.patch({limit: 2, "automatic_dynamic_shapes": False}):
        torch._dynamo.reset()
        compile_builds(lambda method, build: own_code(method, f"build{build}"))
        torch._dynamo.reset()
        with pytest.raises(torch._dynamo.exc.FailOnRecompileLimitHit):
            compile_builds(lambda method, build: method)
    torch._dynamo.reset()

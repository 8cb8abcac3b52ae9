"""Generation settings on the installed transformers, and the variants on the real model with
real torch.compile."""

import time

import pytest
import torch

from conftest import transformers_log
from whisper_perf.build.variant_specs import VARIANTS, reference_spec
from whisper_perf.build.variants import build_variant
from whisper_perf.inputs.generation import GenerationSettings, configure, text_token_ids
from whisper_perf.measure.timing import run_pass


def _generate(model, processor, utterance, settings):
    kwargs = configure(model, settings)
    features = processor(utterance.audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        return model.generate(features, **kwargs)[0]


def _steps_per_generate(variant, call):
    """Decoder steps (forward calls) of each ``generate()`` that ``call()`` makes."""
    steps: list[int] = []
    forward, generate = variant.model.forward, variant.model.generate

    def counted_forward(*args, **kwargs):
        steps[-1] += 1
        return forward(*args, **kwargs)

    def counted_generate(*args, **kwargs):
        steps.append(0)
        return generate(*args, **kwargs)

    variant.model.forward, variant.model.generate = counted_forward, counted_generate
    try:
        call()
    finally:
        variant.model.forward, variant.model.generate = forward, generate
    return steps


def test_fixed_work_generates_exactly_the_budget_even_where_the_model_would_stop(tiny_en, short_set):
    """A budget two tokens past where the transcript ends: a minimum that counted the decoder
    prompt (two tokens for tiny.en) would let the model stop where it wants to."""
    _, model, processor = tiny_en
    shortest = min(short_set.utterances, key=lambda u: u.seconds)
    eot = processor.tokenizer.eos_token_id
    features = processor(shortest.audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        natural = text_token_ids(model.generate(features, **configure(model, GenerationSettings(64)))[0], eot)
        budget = len(natural) + 2
        fixed = model.generate(features, **configure(model, GenerationSettings(budget, fixed_work=True)))[0]
    assert len(text_token_ids(fixed, eot)) == budget
    assert text_token_ids(fixed, eot)[: len(natural)] == natural


def test_warm_up_generates_the_full_budget_in_every_pipeline_call(tiny_en, cpu, long_set):
    """The warm-up's full budget reaches the ASR pipeline (which, up to at least transformers 5.17,
    passes its own copy of the generation config, made when it was built): every chunk's
    generate() runs the whole budget."""
    source, model, processor = tiny_en
    budget = 96  # more than the ~80 tokens a 30-s chunk of this speech holds
    variant = build_variant(VARIANTS["pipeline"], source.name, model, processor, cpu, GenerationSettings(budget))
    steps = _steps_per_generate(variant, lambda: variant.warm_up(long_set.utterances[0], calls=1))
    chunks = len(steps) // 2  # the full-budget call, then one as timed
    assert chunks >= 2 and steps[:chunks] == [budget] * chunks
    assert min(steps[chunks:]) < budget  # the timed settings stop where the speech does


def test_budget_is_respected_and_generate_does_not_warn_about_lengths(tiny_en, short_set):
    _, model, processor = tiny_en
    longest = max(short_set.utterances, key=lambda u: u.seconds)
    with transformers_log() as messages:
        ids = _generate(model, processor, longest, GenerationSettings(8))
    assert len(text_token_ids(ids, processor.tokenizer.eos_token_id)) == 8
    assert not [m for m in messages if "max_length" in m or "max_new_tokens" in m], messages


def test_text_token_ids_drop_prompt_and_special_tokens():
    assert text_token_ids([50257, 50362, 464, 2068, 50363, 50256], eot_id=50256) == [464, 2068]


def test_reference_of_a_math_attention_variant_uses_math_attention():
    ref = reference_spec(VARIANTS["compiled-static"])
    assert ref.name == "eager+math" and ref.math_sdpa and not ref.compiled
    assert reference_spec(VARIANTS["compiled"]) is VARIANTS["eager"]
    assert reference_spec(VARIANTS["pipeline-compiled"]).long_form
    assert reference_spec(VARIANTS["eager"]) is None


@pytest.fixture(scope="module")
def few(short_set):
    from whisper_perf.inputs.audio import AudioSet

    return AudioSet("few", short_set.utterances[:3])


def test_compiled_static_shares_weights_and_transcribes_like_eager(tiny_en, cpu, few):
    source, model, processor = tiny_en
    settings = GenerationSettings()
    eager = build_variant(VARIANTS["eager"], source.name, model, processor, cpu, settings, few.utterances[0])
    compiled = build_variant(VARIANTS["compiled-static"], source.name, model, processor, cpu, settings,
                             few.utterances[0])
    assert compiled.model is not model and compiled.model.forward is not model.forward
    assert compiled.model.proj_out.weight.data_ptr() == model.proj_out.weight.data_ptr()
    assert compiled.model.generation_config.cache_implementation == "static"
    assert getattr(model.generation_config, "cache_implementation", None) != "static"
    assert compiled.first_call_seconds > 0 and compiled.warmup_seconds >= compiled.first_call_seconds
    eager_pass, compiled_pass = run_pass(eager, few), run_pass(compiled, few)
    assert [t.token_ids for t in compiled_pass.transcripts.values()] == \
           [t.token_ids for t in eager_pass.transcripts.values()]
    assert all(s.seconds > 0 and s.tokens > 0 for s in compiled_pass.samples)
    assert compiled.describe()["attention"] == "sdpa-math" and compiled.describe()["dtype"] == "float32"


def test_injected_slowdown_stretches_the_whole_call_over_its_steps():
    """Each wrapped step busy-waits for the fraction of the time since the previous step ended, so
    the call (work before the first step included) takes at least (1 + fraction) times as long."""
    from whisper_perf.build.sensitivity import Slowdown

    slowdown = Slowdown(0.5, lambda: None)
    spent = []

    def decode_step():
        t = time.perf_counter()
        time.sleep(0.01)
        spent.append(time.perf_counter() - t)

    step = slowdown.wrap(decode_step)
    start = time.perf_counter()
    slowdown.start()
    time.sleep(0.02)  # the encoder, before the first decode step
    spent.append(time.perf_counter() - start)
    for _ in range(5):
        step()
    assert time.perf_counter() - start >= 1.5 * sum(spent)


class _StreamClock:
    """A stand-in for torch.cuda where no GPU is: one stream whose work is a list of durations
    (forward's kernels, and ``_sleep`` at 1000 cycles per ms); an event's time is the work queued
    before it.  Enough to check DeviceSlowdown's arithmetic, not CUDA itself (the GPU session does)."""

    def __init__(self):
        self.queued_ms: list[float] = []
        self.sleeps: list[int] = []
        clock = self

        class Event:
            def __init__(self, enable_timing=False):
                self.at = None

            def record(self):
                self.at = sum(clock.queued_ms)

            def synchronize(self):
                pass

            def elapsed_time(self, end):
                return end.at - self.at

        self.Event = Event

    def _sleep(self, cycles):
        self.sleeps.append(cycles)
        self.queued_ms.append(cycles / 1000)


def test_the_device_slowdown_is_sized_from_a_held_steps_device_time():
    """--inject-on device: steps 1-8 run as they are; steps 9-16 are timed with the stream held by a
    spin while the host queues them (one whose host took longer than the hold is not counted, and
    the hold doubles); from then on every step is followed by a spin of the fraction of their median."""
    from whisper_perf.build.sensitivity import DeviceSlowdown

    cuda = _StreamClock()
    slowdown = DeviceSlowdown(0.05, cuda=cuda)
    assert slowdown.cycles_per_ms == 1000
    host_seconds = iter([0.0] * 8 + [0.06] + [0.0] * 100)  # the 9th step's host outlasts the 50-ms hold once
    device_ms = iter([2.0] * 9 + [2.0, 9.0, 2.0, 1.0, 2.0, 2.0, 2.0, 3.0] + [2.0] * 100)  # an outlier, a fast one

    def decode_step():
        time.sleep(next(host_seconds))
        cuda.queued_ms.append(next(device_ms))  # the step's kernels
        return "logits"

    step = slowdown.wrap(decode_step)
    cuda.sleeps.clear()
    assert [step() for _ in range(8)] == ["logits"] * 8 and cuda.sleeps == []  # compiling, recording: untouched
    step()  # not counted: queued after its hold had run out
    assert slowdown.measured == [] and slowdown.hold_ms == 100.0
    for _ in range(8):
        step()
    assert slowdown.measured == [2.0, 9.0, 2.0, 1.0, 2.0, 2.0, 2.0, 3.0] and slowdown.step_ms == 2.0  # the median
    assert cuda.sleeps == [50_000] + [100_000] * 8  # the holds, none after a step yet
    cuda.sleeps.clear()
    slowdown.settle()  # the warm-up ends: already sized
    step(), step()
    assert cuda.sleeps == [100, 100]  # 5% of a 2-ms step, after each step
    assert slowdown.evidence() == {"step_device_ms": 2.0, "step_device_ms_measured": slowdown.measured,
                                   "hold_ms": 100.0, "step_gaps_included": False}


def test_a_short_warm_up_sizes_the_device_slowdown_from_what_it_measured_and_a_step_never_held_says_so():
    from whisper_perf.build.sensitivity import DeviceSlowdown

    cuda = _StreamClock()
    slowdown = DeviceSlowdown(0.1, cuda=cuda)
    slowdown.MAX_HOLD_MS = 100.0
    host_seconds = iter([0.0] * 8 + [0.06, 0.12, 0.12])  # the host outlasts every hold, the longest included
    step = slowdown.wrap(lambda: (time.sleep(next(host_seconds)), cuda.queued_ms.append(4.0)))
    for _ in range(8 + 3):
        step()
    assert slowdown.measured == [4.0, 4.0] and slowdown.step_ms is None  # the 50-ms try not kept; 100 ms: kept
    slowdown.settle()  # the warm-up ended with 2 of 8 steps measured: their median, before any timed call
    assert slowdown.step_ms == 4.0 and slowdown.evidence()["step_gaps_included"] is True
    never = DeviceSlowdown(0.1, cuda=_StreamClock())
    never.wrap(lambda: None)()
    with pytest.raises(RuntimeError, match=r"ran 1 decode step\(s\), and none past the first 8 could be timed"):
        never.settle()

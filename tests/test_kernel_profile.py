"""Device time and fingerprints (whisper_perf.measure.kernel_profile): real torch.profiler calls of a real
tiny.en build, eager and compiled, on the CPU; the kernels inductor generates for small functions
read from their real output code; the verdicts and the report built on them."""

import pytest
import torch

from whisper_perf.build.variant_specs import VARIANTS
from whisper_perf.build.variants import build_variant
from whisper_perf.inputs.generation import GenerationSettings
from whisper_perf.judge.baselines import Entry, Tolerances
from whisper_perf.judge.device_time import device_speedup_interval
from whisper_perf.judge.device_verdicts import judge_device_speedup, judge_device_time
from whisper_perf.judge.diagnostic_verdicts import judge_fingerprint
from whisper_perf.judge.verdicts import Outcome, Verdict
from whisper_perf.record.baseline_recording import device_time_fields
from whisper_perf.measure.kernel_profile import (fingerprint_changes, fingerprint_of, generated_kernels, kernel_family,
                                                 kernels_in_source, profile_call, profile_rounds, profile_summary)
from whisper_perf.record.results import Tally


@pytest.fixture(scope="module")
def builds(tiny_en, cpu, short_set):
    """(eager, compiled, the utterance): 16 new tokens at most."""
    source, model, processor = tiny_en
    settings, utterance = GenerationSettings(max_new_tokens=16), short_set.utterances[0]
    eager = build_variant(VARIANTS["eager"], source.name, model, processor, cpu, settings, utterance)
    compiled = build_variant(VARIANTS["compiled"], source.name, model, processor, cpu, settings, utterance)
    return eager, compiled, utterance


@pytest.fixture(scope="module")
def profiles(builds):
    """(eager, compiled, compiled again) CallProfiles of one utterance."""
    eager, compiled, utterance = builds
    return profile_call(eager, utterance), profile_call(compiled, utterance), profile_call(compiled, utterance)


def test_the_events_read_from_kineto_are_torchs_own_event_tree(builds):
    """read_events gives the host events prof.events() gives, each under the same parent, on the
    eager and on the compiled call, with two same-named ranges nested around it (torch keeps one),
    so the counts of a fingerprint are torch's own."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, record_function

    from whisper_perf.measure.kernel_profile import host_counts, read_events

    def tree(events):
        return sorted((e.name, e.cpu_parent.name if e.cpu_parent else "", e.time_range.start) for e in events
                      if e.device_type == DeviceType.CPU)

    eager, compiled, utterance = builds
    for variant in (eager, compiled):
        inputs = variant.inputs(utterance)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            with record_function("whisper_perf_range"), record_function("whisper_perf_range"):
                variant.run(inputs)
        ours, theirs = read_events(prof), prof.events()
        assert [e.name for e in ours].count("whisper_perf_range") == 1
        assert tree(ours) == tree(theirs)
        assert host_counts(ours) == host_counts(theirs)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="CUDA absent: the CUDA events' readback is checked on a GPU (tools/gpu_session runs this)")
def test_on_cuda_the_events_read_from_kineto_give_torchs_counts_and_device_figures(short_set):
    """The same comparison as above on a GPU, where the profile adds the device's timeline: the
    host counts and the device figures (busy time, kernel time, kernels, memcpys, CUDA-graph
    launches) of read_events equal those of prof.events(), for eager and for CUDA graphs."""
    from torch.profiler import ProfilerActivity, profile

    from whisper_perf.inputs.hardware import cuda_hardware
    from whisper_perf.inputs.models import load_model, resolve_model
    from whisper_perf.measure.kernel_profile import _device_figures, host_counts, read_events

    gpu, source = cuda_hardware(), resolve_model("tiny.en")
    model, processor = load_model(source, "cuda")
    settings, utterance = GenerationSettings(max_new_tokens=16), short_set.utterances[0]
    for name in ("eager", "compiled-static-prebuilt"):
        variant = build_variant(VARIANTS[name], source.name, model, processor, gpu, settings, utterance)
        inputs = variant.inputs(utterance)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            variant.run(inputs)
            torch.cuda.synchronize()
        ours, theirs = read_events(prof), prof.events()
        assert host_counts(ours) == host_counts(theirs), name
        mine, torchs = _device_figures(ours), _device_figures(theirs)
        assert mine["kernels"] > 0 and (mine["cuda_graph_launches"] > 0) == (name != "eager"), (name, mine)
        assert mine == pytest.approx(torchs, rel=1e-6), (name, mine, torchs)


def test_a_profiled_call_counts_steps_ops_graphs_and_the_generated_kernels(profiles):
    eager, compiled, again = profiles
    assert eager.decode_steps == compiled.decode_steps > 1  # same tokens, one forward per step
    assert eager.compiled_graph_calls == 0 and eager.generated_kernels == {}
    assert compiled.compiled_graph_calls == compiled.decode_steps  # every step runs an inductor graph
    kernels = compiled.generated_kernels
    assert kernels and all(name.startswith("cpp_fused_") for name in kernels) and all(n >= 1 for n in kernels.values())
    # fusion: the compiled step dispatches far fewer aten operators than the eager one
    assert 0 < compiled.aten_ops_per_step < eager.aten_ops_per_step / 2
    assert again == compiled  # exact counts: the same call, the same fingerprint
    for p in profiles:  # no device apart from the host: nothing claimed
        assert p.device_busy_seconds is None and p.kernels is None and p.cuda_graph_launches is None
    assert fingerprint_of(compiled.as_dict()) == fingerprint_of(again.as_dict())
    assert "kernels_per_step" not in fingerprint_of(compiled.as_dict())  # a CPU has no device kernels to count


def test_generated_kernels_are_read_from_inductor_output_code_and_named_without_their_number():
    torch._dynamo.reset()
    x = torch.randn(32, 32)

    def plain(t):
        return torch.sin(t) + 1

    def with_relu(t):  # the same model with one operator more, as a release might add
        return torch.relu(torch.sin(t) + 1) @ t

    sources = []
    for fn in (plain, with_relu):
        from torch._inductor.utils import run_and_get_code

        _, code = run_and_get_code(torch.compile(fn, fullgraph=True), x)
        sources.append("\n".join(code))
    names = [kernels_in_source(s) for s in sources]
    assert names[0] == ["cpp_fused_add_sin_0"] and "cpp_fused_add_relu_sin_0" in names[1], names
    assert kernel_family("cpp_fused__softmax_add_3") == "cpp_fused__softmax_add"
    assert generated_kernels([]) == {} and generated_kernels(["no-such-graph-key"]) is None  # never guessed

    before = {"aten_ops_per_step": 4.0, "generated_kernels": ["cpp_fused_add_sin x1"]}
    after = {"aten_ops_per_step": 5.0, "generated_kernels": ["cpp_fused_add_relu_sin x1"]}
    assert fingerprint_changes(before, dict(before)) == []
    assert fingerprint_changes(before, after) == [
        "generated kernels added: cpp_fused_add_relu_sin x1; removed: cpp_fused_add_sin x1",
        "aten ops per decode step 4 -> 5"]


def test_a_changed_fingerprint_is_reported_never_failed(profiles):
    _, compiled, _ = profiles
    found = fingerprint_of(compiled.as_dict())
    assert judge_fingerprint(found, found, "cmd").outcome is Outcome.PASS
    assert judge_fingerprint(found, found, "cmd").message.startswith("unchanged: ")
    assert judge_fingerprint(found, None, "cmd").outcome is Outcome.NO_BASELINE
    expected = {**found, "generated_kernels": found["generated_kernels"][1:] + ["cpp_fused_gone x1"]}
    changed = judge_fingerprint(found, expected, "cmd")
    assert changed.outcome is Outcome.CHANGED and not changed.outcome.fails
    assert f"added: {found['generated_kernels'][0]}; removed: cpp_fused_gone x1" in changed.message
    tally = Tally.of([changed, Verdict("speedup", Outcome.PASS, "")], 0, "k")
    assert tally.text() == "1 check passed, 0 failed, 0 not judged; 1 fingerprint(s) changed (reported, not failed)"



def _entry(**diagnostics) -> Entry:
    return Entry("tiny.en", "compiled", {}, 1.0, None, diagnostics=diagnostics)


def test_device_time_is_never_judged_on_a_cpu_and_says_why(profiles, tiny_en, cpu, short_set):
    """On a CPU both device-time checks say why they are not judged, never PASS, not even against a
    baseline that has the figures; a CUDA run whose profiler recorded nothing, or could not start,
    says that instead."""
    _, compiled, _ = profiles
    summary = profile_summary([compiled])
    assert "device_busy_rounds_ms" not in summary and summary["calls_profiled"] == 1
    entry = _entry(device_busy_ms=5.0, device_speedup=2.0)
    for verdict in (judge_device_time(summary, entry, Tolerances(), False, "cmd"),
                    judge_device_speedup(summary, summary, entry, Tolerances(), False, "cmd")):
        assert verdict.outcome is Outcome.NOT_APPLICABLE and not verdict.outcome.judged and not verdict.speed
        assert "not judged on a CPU: the host is the device here" in verdict.message
    on_cuda = judge_device_time(summary, entry, Tolerances(), True, "cmd")
    assert on_cuda.outcome is Outcome.NOT_APPLICABLE and "profiler recorded no device activity" in on_cuda.message
    failed = judge_device_speedup(None, None, entry, Tolerances(), True, "cmd", profile_error="RuntimeError: CUPTI")
    assert failed.outcome is Outcome.NOT_APPLICABLE and "could not start (RuntimeError: CUPTI)" in failed.message


def test_device_time_is_judged_with_an_interval_over_its_profiled_rounds():
    """A CUDA profile's rounds (profile_summary's device_busy_rounds_ms) give the device-time check an
    interval, a tolerance and a stated detectable increase, and the device speedup its paired
    ratio; a recording keeps the estimates (diagnostics.device_time_fields)."""
    compiled = {"device_busy_rounds_ms": [10.02, 10.05, 9.98, 10.01, 10.04], "kernel_seconds": 0.0112}
    eager = {"device_busy_rounds_ms": [30.1, 30.0, 30.2, 29.9, 30.1]}
    recorded = device_time_fields(compiled, eager)
    assert recorded["device_busy_ms"] == pytest.approx(10.02, abs=0.01)
    assert recorded["kernel_ms"] == pytest.approx(11.2)  # the summed kernel durations, kept beside the busy union
    assert recorded["device_speedup"] == pytest.approx(3.0, abs=0.01)
    entry, tolerances = _entry(**recorded), Tolerances(device_time=0.02)
    same = judge_device_time(compiled, entry, tolerances, True, "cmd")
    assert same.outcome is Outcome.PASS and same.speed and same.detectable < 0.03, same
    assert same.message.startswith("device time 10.020 ms [") and "(95% CI) within baseline 10.020 ms, tolerance 2%; " \
        f"could detect an increase of {same.detectable:.1%} or more" in same.message
    slower = {"device_busy_rounds_ms": [1.05 * ms for ms in compiled["device_busy_rounds_ms"]]}
    assert judge_device_time(slower, entry, tolerances, True, "cmd").outcome is Outcome.REGRESSION
    assert judge_device_speedup(compiled, eager, entry, tolerances, True, "cmd").outcome is Outcome.PASS
    lost = judge_device_speedup(slower, eager, entry, tolerances, True, "cmd")
    assert lost.outcome is Outcome.REGRESSION and lost.speed and "device speedup 2.85" in lost.message, lost
    no_baseline = judge_device_speedup(compiled, eager, _entry(), tolerances, True, "cmd")
    assert no_baseline.outcome is Outcome.NO_BASELINE and no_baseline.speed  # --strict-gate counts it
    assert device_speedup_interval(compiled, {"device_busy_rounds_ms": [30.0]}) is None  # unpaired: not guessed


def test_profiled_rounds_alternate_the_builds_and_keep_one_fingerprint(tiny_en, cpu, short_set):
    """profile_rounds on the real tiny.en: the variant's and its reference's calls alternate, every
    call of a build runs the same code, and the summary keeps the first call and the count.  (Its
    own builds: a test before it resets dynamo, which would make the shared ones compile again.)"""
    source, model, processor = tiny_en
    settings, utterance = GenerationSettings(max_new_tokens=8), short_set.utterances[1]
    eager = build_variant(VARIANTS["eager"], source.name, model, processor, cpu, settings, utterance)
    compiled = build_variant(VARIANTS["compiled"], source.name, model, processor, cpu, settings, utterance)
    mine, theirs = profile_rounds(compiled, eager, utterance, 2)
    assert len(mine) == len(theirs) == 2 and mine[0] == mine[1] and theirs[0] == theirs[1]
    assert mine[0].compiled_graph_calls > 0 and theirs[0].compiled_graph_calls == 0
    summary = profile_summary(mine)
    assert summary["calls_profiled"] == 2 and "fingerprint_varies" not in summary
    assert summary["decode_steps"] == mine[0].decode_steps
    assert profile_summary([mine[0], theirs[0]])["fingerprint_varies"] is True  # different code: said so
    assert profile_rounds(compiled, None, utterance, 1)[1] == []


def test_device_busy_is_the_union_of_the_gpus_work_and_launches_are_counted_on_the_host():
    """The arithmetic of a CUDA profile, on events shaped as torch.profiler gives them (no GPU here:
    a real CUDA profile is for the GPU calibration to check): overlapping kernels count once, a copy
    is work, a synchronization record and an annotation projected on the GPU are not, CUDA-graph
    launches are the host's cudaGraphLaunch calls."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType
    from torch.autograd.profiler_util import Interval

    from whisper_perf.measure.kernel_profile import _device_figures

    def event(name, start, end, device=DeviceType.CUDA, kind="kernel"):
        return SimpleNamespace(name=name, device_type=device, activity_type=kind, time_range=Interval(start, end))

    events = [event("triton_poi_fused_add_0", 0, 100), event("triton_red_fused_sum_1", 50, 150),  # overlap
              event("Memcpy HtoD (Pageable -> Device)", 200, 210, kind="gpu_memcpy"),
              event("cudaStreamSynchronize", 210, 400, kind="cuda_sync"),  # waiting, not work
              event("cudaGraphLaunch", 0, 5, device=DeviceType.CPU, kind="cuda_runtime"),
              event("cudaGraphLaunch_v10000", 5, 9, device=DeviceType.CPU, kind="cuda_runtime")]
    graph_on_gpu = event("## Call CompiledFxGraph abc ##", 0, 210, kind="gpu_user_annotation")  # spans the gaps
    for with_types in (True, False):  # a torch whose events carry no activity type: classified by name
        found = events + [graph_on_gpu]
        if not with_types:
            found = [SimpleNamespace(**{k: v for k, v in vars(e).items() if k != "activity_type"}) for e in found]
        figures = _device_figures(found)
        assert figures["device_busy_seconds"] == pytest.approx(160e-6)  # 0-150 and 200-210
        assert figures["kernel_seconds"] == pytest.approx(200e-6)  # summed: 100 + 100
        assert (figures["kernels"], figures["memcpys"], figures["cuda_graph_launches"]) == (2, 1, 2)
    profile = {"aten_ops_per_step": 3.0, "generated_kernels": None, "kernels_per_step": 2.0, **figures}
    print_ = fingerprint_of(profile)  # what a GPU baseline keeps: the counts, exact
    assert (print_["kernels_per_step"], print_["cuda_graph_launches_per_call"], print_["memcpys_per_call"]) == (2.0, 2, 1)
    assert fingerprint_changes(print_, {**print_, "memcpys_per_call": 2}) == ["memcpys per call 1 -> 2"]
    assert "1 memcpy(s) per call" in judge_fingerprint(print_, print_, "cmd").message


def test_a_figure_one_fingerprint_has_and_the_other_not_is_a_change():
    """A torch whose compiled graphs can no longer be read leaves generated_kernels out: that is
    never "unchanged"."""
    measured = {"aten_ops_per_step": 4.0, "generated_kernels": ["cpp_fused_add_sin x1"]}
    assert fingerprint_changes(measured, {"aten_ops_per_step": 4.0}) == ["generated_kernels no longer measured"]
    assert judge_fingerprint({"aten_ops_per_step": 4.0}, measured, "cmd").outcome is Outcome.CHANGED

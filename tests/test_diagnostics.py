"""Compile health from torch's own records (real torch.compile of small functions, torch's own
CUDA-graph skip function), the CUDA peak-memory arithmetic, the roofline arithmetic (a real Whisper
module), the GPU bandwidth table, diagnostics of a real tiny.en build without a bandwidth, and
diagnostics in baseline files."""

import dataclasses
import json
import logging

import pytest
import torch

from whisper_perf.build.compile_health import SKIP_LOGGERS, CompileWatch
from whisper_perf.judge import baselines
from whisper_perf.judge.diagnostic_verdicts import judge_ceiling, judge_compile_health
from whisper_perf.judge.verdicts import Outcome
from whisper_perf.record.baseline_recording import baseline_fields
from whisper_perf.measure.diagnostics import diagnose
from whisper_perf.measure.phases import CUDA_PEAK_KIND, cuda_peak_rise
from whisper_perf.measure.roofline import (Bandwidth, decode_step_bytes, gpu_bandwidth, measure_cpu_bandwidth,
                                           missing_bandwidth, roofline)
from whisper_perf.record.report import _diagnostic_sections, diagnostics_table
from whisper_perf.measure.diagnostics_data import Diagnostics
from whisper_perf.record.results import MeasurementRecord

MUTATION = "skipping cudagraphs due to mutated inputs (1 instances). Found from : \n  File \"x.py\", line 1"


def test_compile_watch_sees_graphs_then_nothing_then_a_recompile_with_its_failed_guard():
    torch._dynamo.reset()

    def scaled_sine(x):
        return torch.sin(x) * 2 + 1

    compiled = torch.compile(scaled_sine, dynamic=False, fullgraph=True)
    with CompileWatch() as warmup:
        compiled(torch.randn(4))
    assert warmup.health.graphs == 1 and warmup.health.recompiles == 0 and warmup.health.graph_breaks == 0
    assert warmup.health.compile_seconds > 0
    with CompileWatch() as steady:
        compiled(torch.randn(4))
    assert steady.health.frames_compiled == 0 and steady.health.recompiles == 0
    assert judge_compile_health(warmup.health, steady.health, {"graph_breaks": 0}, cuda=False).outcome is Outcome.PASS
    with CompileWatch() as timed:
        compiled(torch.randn(5))  # another shape under dynamic=False: a recompile
    assert timed.health.recompiles == 1
    assert any("size mismatch" in r for r in timed.health.recompile_reasons), timed.health.recompile_reasons
    verdict = judge_compile_health(warmup.health, timed.health, {"graph_breaks": 0}, cuda=False)
    assert verdict.outcome is Outcome.REGRESSION
    assert "recompile(s) during the timed rounds" in verdict.message and "size mismatch" in verdict.message


def test_a_compile_under_pytest_leaves_no_torch_trace_records(caplog):
    """pytest attaches its capture (here: caplog) to torch's non-propagating trace log; while it is
    there, torch builds a structured-trace record of every compile event."""
    torch._dynamo.reset()
    trace_log = logging.getLogger("torch.__trace")
    if not any(type(h).__module__.startswith("_pytest.") for h in trace_log.handlers):
        pytest.skip(f"pytest {pytest.__version__} does not attach to non-propagating loggers (9.2 does)")
    with CompileWatch() as watch:
        torch.compile(lambda x: torch.cos(x) + 3, fullgraph=True)(torch.randn(4))
    assert watch.health.graphs == 1
    assert [r for r in caplog.records if r.name == "torch.__trace"] == []
    assert not any(type(h).__module__.startswith("_pytest.") for h in trace_log.handlers)


def test_compile_watch_counts_a_graph_break_and_the_verdict_names_it():
    torch._dynamo.reset()

    def broken(x):
        y = x * 2
        torch._dynamo.graph_break()
        return y + 1

    with CompileWatch() as watch:
        torch.compile(broken)(torch.randn(3))
    assert watch.health.graph_breaks >= 1 and watch.health.graphs == 2
    assert watch.health.graph_break_reasons
    quiet = CompileWatch().health  # nothing in the timed window
    assert judge_compile_health(watch.health, quiet, {"graph_breaks": 0}, cuda=False).outcome is Outcome.REGRESSION
    assert judge_compile_health(watch.health, quiet, {"graph_breaks": 1}, cuda=False).outcome is Outcome.PASS
    unjudged = judge_compile_health(watch.health, quiet, None, cuda=False)  # no baseline: recompiles judged alone
    assert unjudged.outcome is Outcome.PASS and "graph breaks and CUDA-graph skip reasons not compared" in unjudged.message


def test_new_cudagraph_skip_reason_fails_a_known_one_does_not():
    warmup = CompileWatch().health
    warmup.cudagraph_skip_reasons = ["skipping cudagraphs due to mutated inputs (1 instances)"]
    timed = CompileWatch().health
    known = {"graph_breaks": 0, "cudagraph_skip_reasons": list(warmup.cudagraph_skip_reasons)}
    assert judge_compile_health(warmup, timed, known, cuda=True).outcome is Outcome.PASS
    verdict = judge_compile_health(warmup, timed, {"graph_breaks": 0, "cudagraph_skip_reasons": []}, cuda=True)
    assert verdict.outcome is Outcome.REGRESSION and "mutated inputs" in verdict.message


def _skip_filters() -> list:
    return [f for name in SKIP_LOGGERS for f in logging.getLogger(name).filters]


def test_compile_watch_reads_a_run_time_cudagraph_skip_from_torchs_own_skip_function():
    """A skip decided at run time (CUDA-graph trees: mutated inputs, the re-record limit) reaches no
    compilation metric, only torch's skip log and counter; the watch reads both."""
    from torch._inductor.cudagraph_utils import log_cudagraph_skip_and_bump_counter

    with CompileWatch() as quiet:
        pass
    assert quiet.health.cudagraph_skips == 0 and quiet.health.cudagraph_skip_reasons == []
    with CompileWatch() as watch:
        log_cudagraph_skip_and_bump_counter(MUTATION)
    log_cudagraph_skip_and_bump_counter(MUTATION)  # after the window: not counted in it
    health = watch.health
    assert health.cudagraph_skips == 1 and health.cudagraph_skips_unexplained == 0
    assert health.cudagraph_skip_reasons == ["skipping cudagraphs due to mutated inputs (1 instances). Found from :"]
    assert _skip_filters() == []
    known = {"graph_breaks": 0, "cudagraph_skip_reasons": list(health.cudagraph_skip_reasons)}
    new = judge_compile_health(health, quiet.health, {"graph_breaks": 0, "cudagraph_skip_reasons": []}, cuda=True)
    assert new.outcome is Outcome.REGRESSION and "newly skipped: skipping cudagraphs due to mutated" in new.message
    assert judge_compile_health(health, quiet.health, known, cuda=True).outcome is Outcome.PASS
    timed = judge_compile_health(quiet.health, health, known, cuda=True)  # known, but while timed
    assert timed.outcome is Outcome.REGRESSION
    assert "1 CUDA-graph skip(s) during the timed rounds (skipping cudagraphs due to mutated" in timed.message


def test_compile_watch_reads_the_skip_even_where_inductor_warnings_are_silenced():
    from torch._inductor.cudagraph_utils import log_cudagraph_skip_and_bump_counter

    inductor, skip_logger = logging.getLogger("torch._inductor"), logging.getLogger(SKIP_LOGGERS[0])
    levels = inductor.level, skip_logger.level
    inductor.setLevel(logging.ERROR)  # what TORCH_LOGS="-inductor" does
    try:
        with CompileWatch() as watch:
            log_cudagraph_skip_and_bump_counter(MUTATION)
        assert not skip_logger.isEnabledFor(logging.WARNING)  # silenced again after the window
    finally:
        inductor.setLevel(levels[0])
    assert watch.health.cudagraph_skips == 1 and len(watch.health.cudagraph_skip_reasons) == 1
    assert skip_logger.level == levels[1] and _skip_filters() == []


def test_a_skip_torch_counts_without_a_reason_fails_on_cuda_and_is_not_judged_on_a_cpu():
    """On a CPU, reduce-overhead compiles graphs without a CUDA device: torch bumps the skip counter
    for each without logging a reason (CUDA graphs do not apply there)."""
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: torch.cos(x) + 1, mode="reduce-overhead", fullgraph=True)
    with CompileWatch() as warmup:
        compiled(torch.randn(4))
    health = warmup.health
    assert health.cudagraph_skips >= 1 and health.cudagraph_skips_unexplained == health.cudagraph_skips
    assert health.cudagraph_skip_reasons == []
    quiet = CompileWatch().health
    expected = {"graph_breaks": 0, "cudagraph_skip_reasons": []}
    assert judge_compile_health(health, quiet, expected, cuda=False).outcome is Outcome.PASS
    verdict = judge_compile_health(health, quiet, expected, cuda=True)
    assert verdict.outcome is Outcome.REGRESSION
    assert f"{health.cudagraph_skips} CUDA-graph skip(s) in warm-up, reason not recorded by torch" in verdict.message


def test_cuda_peak_memory_is_the_rise_above_what_was_allocated_at_the_start(tmp_path):
    gib = 2**30
    # 3 GiB held by earlier builds (weights, caches, CUDA-graph pools); this build's calls peak at 3.5
    peak = cuda_peak_rise(start_allocated=3 * gib, peak_allocated=3 * gib + gib // 2, start_reserved=4 * gib,
                          peak_reserved=5 * gib)
    assert (peak.bytes, peak.start_bytes, peak.reserved_bytes, peak.reserved_start_bytes) == \
           (gib // 2, 3 * gib, gib, 4 * gib)
    assert peak.kind == CUDA_PEAK_KIND
    # the same build after more builds ran: the same rise, so the same verdict
    assert cuda_peak_rise(7 * gib, 7 * gib + gib // 2, 9 * gib, 9 * gib).bytes == peak.bytes
    diagnostics = Diagnostics(variant={"phases": {}, "peak_memory": peak.as_dict()},
                              reference={"phases": {}, "peak_memory": cuda_peak_rise(gib, 2 * gib, gib, gib).as_dict()})
    fields = baseline_fields(diagnostics)
    assert fields == {"peak_memory_bytes": gib // 2, "reference_peak_memory_bytes": gib}
    assert baselines.load(_file_with(tmp_path, fields)).entries[0].diagnostics == fields  # validated as recorded


def _small_whisper():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(vocab_size=1000, d_model=64, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
                           max_source_positions=1500, max_target_positions=448, pad_token_id=0, bos_token_id=1,
                           eos_token_id=2, decoder_start_token_id=3)
    return WhisperForConditionalGeneration(config).eval()


def test_decode_step_bytes_count_the_tied_projection_once_and_both_kv_caches():
    model = _small_whisper()
    decoder = model.get_decoder()
    assert model.proj_out.weight is decoder.embed_tokens.weight  # tied, as in every Whisper
    params = sum(p.numel() for p in decoder.parameters())
    # every decoder weight once (the projection is the embedding), one row of the position table
    expected_weights = 4 * (params - 448 * 64 + 64)
    step = decode_step_bytes(model, mean_position=10.5)
    assert step.weights == expected_weights
    assert step.cross_attention_cache == 2 * 2 * 1500 * 64 * 4  # layers x (k, v) x frames x width x fp32
    assert step.self_attention_cache == int(2 * 2 * 10.5 * 64 * 4)
    half = decode_step_bytes(model.to(torch.float16), 10.5)
    assert half.total == pytest.approx(step.total / 2, abs=4)


def test_roofline_floor_and_percentage():
    from whisper_perf.measure.roofline import StepBytes

    line = roofline(StepBytes(100_000_000, 20_000_000, 0), Bandwidth(60.0, "test"), measured_ms=8.0)
    assert line.floor_ms == pytest.approx(2.0)  # 120 MB / 60 GB/s
    assert line.percent_of_roofline == pytest.approx(25.0)
    assert roofline(StepBytes(1, 0, 0), Bandwidth(1.0, "test"), None).percent_of_roofline is None


@pytest.mark.parametrize("name, gbps", [
    ("NVIDIA H100 80GB HBM3", 3350), ("NVIDIA H100 PCIe", 2000), ("NVIDIA H100 NVL", 3900), ("NVIDIA H200", 4800),
    ("NVIDIA H200 NVL", 4800), ("NVIDIA GH200 480GB", 4000), ("NVIDIA A100-SXM4-80GB", 2039),
    ("NVIDIA A100-SXM4-40GB", 1555), ("NVIDIA A100 80GB PCIe", 1935), ("NVIDIA L4", 300), ("NVIDIA L40S", 864),
    ("NVIDIA A10G", 600), ("Tesla T4", 320), ("NVIDIA A40", 696), ("NVIDIA L20", 864),
    ("NVIDIA RTX 6000 Ada Generation", 960)])
def test_gpu_bandwidth_table_matches_the_most_specific_name(name, gbps):
    assert gpu_bandwidth(name).gbps == gbps


@pytest.mark.parametrize("name", ["Some Future Accelerator", "NVIDIA Z99-unknown-xyz", "NVIDIA RTX A4000",
                                  "NVIDIA RTX A400", "NVIDIA RTX A1000", "NVIDIA H800"])
def test_a_gpu_missing_from_the_table_has_no_bandwidth(name):
    assert gpu_bandwidth(name) is None  # whole words: "a40" is not the RTX A4000


def test_unknown_gpu_has_no_bandwidth_and_cpu_bandwidth_is_measured(cpu):
    assert gpu_bandwidth("Some Future Accelerator") is None
    gpu = dataclasses.replace(cpu, device="cuda", device_name="NVIDIA Z99-unknown-xyz")
    assert missing_bandwidth(gpu) == ("not available: GPU 'NVIDIA Z99-unknown-xyz' is not in the bandwidth "
                                      "table (pass --memory-bandwidth GBPS)")
    measured = measure_cpu_bandwidth(mebibytes=16, repeats=2)
    assert measured.gbps > 0.1 and measured.source.startswith("measured")


def test_ceiling_verdicts():
    assert judge_ceiling("peak memory", 1100, 1000, 0.10, "MiB", "cmd").outcome is Outcome.PASS
    failed = judge_ceiling("peak memory", 1101, 1000, 0.10, "MiB", "cmd")
    assert failed.outcome is Outcome.REGRESSION and "1,101 MiB is above 1,100 MiB (baseline 1,000 MiB" in failed.message
    assert judge_ceiling("cold compile", 5, None, 0.5, "s", "nox -s record").outcome is Outcome.NO_BASELINE


def _file_with(tmp_path, diagnostics):
    key = "cpu-test"
    path = tmp_path / f"{key}.json"
    entry = {"model": "tiny.en", "variant": "compiled", "protocol": {}, "seconds": 1.0, "wer": 0.1,
             "diagnostics": diagnostics}
    path.write_text(json.dumps({"schema_version": 1, "hardware_key": key, "entries": [entry]}))
    return path


def test_baseline_diagnostics_are_validated_by_name_and_type(tmp_path):
    good = {"graph_breaks": 0, "graphs": 2, "cudagraph_skip_reasons": [], "peak_memory_bytes": 123,
            "cold_compile_seconds": 50.5, "warm_compile_seconds": 12.0, "per_token_ms": 11.2}
    assert baselines.load(_file_with(tmp_path, good)).entries[0].diagnostics == good
    with pytest.raises(baselines.BaselineError, match=r"entry 0 \(tiny.en/compiled\), diagnostics: unknown field 'grpah_breaks'"):
        baselines.load(_file_with(tmp_path, {"grpah_breaks": 0}))
    printed = {"fingerprint": {"aten_ops_per_step": 77.6, "generated_kernels": ["cpp_fused_gelu_view x2"]}}
    assert baselines.load(_file_with(tmp_path, printed)).entries[0].diagnostics == printed
    with pytest.raises(baselines.BaselineError, match=r"diagnostics.fingerprint: field 'generated_kernels' must be"):
        baselines.load(_file_with(tmp_path, {"fingerprint": {"generated_kernels": "cpp_fused_gelu_view x2"}}))
    with pytest.raises(baselines.BaselineError, match="field 'peak_memory_bytes' must be a non-negative int"):
        baselines.load(_file_with(tmp_path, {"peak_memory_bytes": -5}))


def test_diagnose_without_a_bandwidth_reports_the_roofline_as_not_available(tiny_en, cpu, short_set):
    """A real tiny.en eager build on the CPU, diagnosed as on a GPU missing from the bandwidth table
    (``bandwidth_for`` gave None): no KeyError, the reason instead, "n/a" in both reports."""
    from whisper_perf.build.variant_specs import VARIANTS
    from whisper_perf.build.variants import build_variant
    from whisper_perf.inputs.generation import GenerationSettings
    from whisper_perf.measure.timing import Measurement

    source, model, processor = tiny_en
    variant = build_variant(VARIANTS["eager"], source.name, model, processor, cpu,
                            GenerationSettings(max_new_tokens=8))  # short: the roofline is not the point
    measurement = Measurement(source.name, "eager", None, short_set.name, 1.0, variant.describe(), {})
    data = diagnose(measurement, variant, None, short_set, bandwidth=None)
    mine = data.variant
    assert isinstance(data, Diagnostics) and data.bandwidth is None and mine["roofline"] is None
    assert mine["roofline_not_available"] == missing_bandwidth(cpu)
    assert mine["phases"]["per_token_ms"] > 0
    memory = mine["peak_memory"]  # the CPU judges the total peak RSS; the RSS before the calls beside it
    assert memory["bytes"] >= memory["start_bytes"] > 100 * 2**20 and "RSS" in memory["kind"]
    record = MeasurementRecord(source.name, "eager", None, short_set.name, 1, 1.0, variant.describe(),
                               summary=None, diagnostics=data)
    terminal = diagnostics_table([record])
    assert "n/a" in terminal.splitlines()[2] and f"roofline {missing_bandwidth(cpu)}" in terminal
    markdown = "\n".join(_diagnostic_sections([record]))
    assert "| n/a | n/a | n/a |" in markdown and f"Roofline {missing_bandwidth(cpu)}." in markdown

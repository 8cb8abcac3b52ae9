"""Compile health from torch's own records (real torch.compile of small functions), the roofline
arithmetic (a real Whisper module), the GPU bandwidth table, and diagnostics in baseline files."""

import json

import pytest
import torch

from whisper_perf import baselines
from whisper_perf.compile_health import CompileWatch
from whisper_perf.roofline import Bandwidth, decode_step_bytes, gpu_bandwidth, measure_cpu_bandwidth, roofline
from whisper_perf.verdicts import Outcome, judge_ceiling, judge_compile_health


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
    assert judge_compile_health(warmup.health, steady.health, {"graph_breaks": 0}).outcome is Outcome.PASS
    with CompileWatch() as timed:
        compiled(torch.randn(5))  # another shape under dynamic=False: a recompile
    assert timed.health.recompiles == 1
    assert any("size mismatch" in r for r in timed.health.recompile_reasons), timed.health.recompile_reasons
    verdict = judge_compile_health(warmup.health, timed.health, {"graph_breaks": 0})
    assert verdict.outcome is Outcome.REGRESSION
    assert "recompile(s) during the timed rounds" in verdict.message and "size mismatch" in verdict.message


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
    assert judge_compile_health(watch.health, quiet, {"graph_breaks": 0}).outcome is Outcome.REGRESSION
    assert judge_compile_health(watch.health, quiet, {"graph_breaks": 1}).outcome is Outcome.PASS
    assert judge_compile_health(watch.health, quiet, None).outcome is Outcome.NO_BASELINE


def test_new_cudagraph_skip_reason_fails_a_known_one_does_not():
    warmup = CompileWatch().health
    warmup.cudagraph_skip_reasons = ["skipping cudagraphs due to mutated inputs (1 instances)"]
    timed = CompileWatch().health
    known = {"graph_breaks": 0, "cudagraph_skip_reasons": list(warmup.cudagraph_skip_reasons)}
    assert judge_compile_health(warmup, timed, known).outcome is Outcome.PASS
    verdict = judge_compile_health(warmup, timed, {"graph_breaks": 0, "cudagraph_skip_reasons": []})
    assert verdict.outcome is Outcome.REGRESSION and "mutated inputs" in verdict.message


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
    from whisper_perf.roofline import StepBytes

    line = roofline(StepBytes(100_000_000, 20_000_000, 0), Bandwidth(60.0, "test"), measured_ms=8.0)
    assert line.floor_ms == pytest.approx(2.0)  # 120 MB / 60 GB/s
    assert line.percent_of_roofline == pytest.approx(25.0)
    assert roofline(StepBytes(1, 0, 0), Bandwidth(1.0, "test"), None).percent_of_roofline is None


@pytest.mark.parametrize("name, gbps", [
    ("NVIDIA H100 80GB HBM3", 3350), ("NVIDIA H100 PCIe", 2000), ("NVIDIA H100 NVL", 3900), ("NVIDIA H200", 4800),
    ("NVIDIA GH200 480GB", 4000), ("NVIDIA A100-SXM4-80GB", 2039), ("NVIDIA A100-SXM4-40GB", 1555),
    ("NVIDIA A100 80GB PCIe", 1935), ("NVIDIA L4", 300), ("NVIDIA L40S", 864), ("NVIDIA A10G", 600),
    ("Tesla T4", 320)])
def test_gpu_bandwidth_table_matches_the_most_specific_name(name, gbps):
    assert gpu_bandwidth(name).gbps == gbps


def test_unknown_gpu_has_no_bandwidth_and_cpu_bandwidth_is_measured():
    assert gpu_bandwidth("Some Future Accelerator") is None
    measured = measure_cpu_bandwidth(mebibytes=16, repeats=2)
    assert measured.gbps > 0.1 and measured.source.startswith("measured")


def test_ceiling_verdicts():
    assert judge_ceiling("peak memory", 1100, 1000, 0.10, "MiB", "cmd").outcome is Outcome.PASS
    failed = judge_ceiling("peak memory", 1101, 1000, 0.10, "MiB", "cmd")
    assert failed.outcome is Outcome.REGRESSION and "above 1.1e+03 MiB" in failed.message
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
    with pytest.raises(baselines.BaselineError, match="field 'peak_memory_bytes' must be a non-negative int"):
        baselines.load(_file_with(tmp_path, {"peak_memory_bytes": -5}))

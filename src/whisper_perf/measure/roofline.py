"""How fast could one decode step be?  The memory-bandwidth floor of decoding (batch 1, or the
``--batch`` of the run: the weights are read once per step for the whole batch).

At batch size 1 each decode step multiplies one token's activations by every decoder weight
matrix: about two FLOPs per weight read, far below what any CPU or GPU can compute per byte it
loads.  The step is therefore bound by memory bandwidth, and its floor is

    bytes one step must read / memory bandwidth

where the bytes are

* every decoder weight once, including the output projection (tied to the token embedding, so the
  embedding matrix is read in full by the projection; the embedding lookup itself reads one row),
  and one row of the learned position table;
* the cross-attention keys and values of every layer (the encoder's 1500 frames);
* the self-attention keys and values of the tokens so far (on average half the generated length
  plus the prompt).

The measured per-token time divided into this floor is the share of the bandwidth a build
achieves ("% of roofline"): 100% would mean it does nothing but stream the bytes it must.  A
static cache that attends over its whole allocated length, padding, kernel launch gaps and
Python overhead all show up as distance from the floor.

Bandwidth: a table of the peak figures vendors publish for common GPUs (matched on the device
name; ``--memory-bandwidth`` overrides it), and on a CPU a measured copy bandwidth (a 256 MiB
``Tensor.copy_`` with the suite's threads, best of five, counting bytes read and written).  A GPU
missing from the table has no floor: the diagnostics say so (``missing_bandwidth``).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

import torch

# Peak DRAM bandwidth in GB/s from the vendors' data sheets, matched in order on the lower-cased
# device name as torch reports it, as whole words ("a40" is not "RTX A4000", "h200" not "GH200").
GPU_BANDWIDTH_GBPS: list[tuple[str, float]] = [
    ("gh200", 4000.0),
    ("h200", 4800.0),  # SXM and NVL
    ("h100 nvl", 3900.0),
    ("h100 pcie", 2000.0),
    ("h100", 3350.0),  # SXM5 80GB HBM3
    ("b200", 8000.0),
    ("a100-sxm4-80gb", 2039.0),
    ("a100 80gb pcie", 1935.0),
    ("a100", 1555.0),  # 40GB
    ("a10g", 600.0),
    ("a10", 600.0),
    ("a40", 696.0),  # 48 GB GDDR6, 384-bit at 14.5 Gbps
    ("l40s", 864.0),
    ("l40", 864.0),
    ("l20", 864.0),  # 48 GB GDDR6, 384-bit at 18 Gbps
    ("l4", 300.0),
    ("rtx 6000 ada", 960.0),  # 48 GB GDDR6, 384-bit at 20 Gbps
    ("t4", 320.0),
    ("v100", 900.0),
    ("rtx 4090", 1008.0),
    ("rtx 3090", 936.0),
]


@dataclass(frozen=True)
class Bandwidth:
    gbps: float
    source: str  # "table: ...", "measured: ...", "--memory-bandwidth"

    def as_dict(self) -> dict:
        return asdict(self)


def gpu_bandwidth(device_name: str) -> Bandwidth | None:
    name = device_name.lower()
    for needle, gbps in GPU_BANDWIDTH_GBPS:
        if re.search(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9])", name):
            return Bandwidth(gbps, f"data-sheet peak for '{needle}'")
    return None


def missing_bandwidth(hardware) -> str:
    """Why there is no floor when ``bandwidth_for`` found no bandwidth."""
    if hardware.is_cuda:
        return (f"not available: GPU '{hardware.device_name}' is not in the bandwidth table "
                "(pass --memory-bandwidth GBPS)")
    return "not available: no memory bandwidth (pass --memory-bandwidth GBPS)"


def measure_cpu_bandwidth(mebibytes: int = 256, repeats: int = 5) -> Bandwidth:
    """Copy bandwidth of this CPU with torch's threads: bytes read + written per second."""
    src = torch.ones(mebibytes * 2**20 // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # touch every page before timing
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    gbps = 2 * src.numel() * src.element_size() / best / 1e9
    return Bandwidth(round(gbps, 2), f"measured: {mebibytes} MiB copy, {torch.get_num_threads()} threads, best of {repeats}")


def bandwidth_for(hardware, override_gbps: float | None = None) -> Bandwidth | None:
    """The bandwidth the floor is computed with: the override, the GPU table, or a CPU measurement."""
    if override_gbps:
        return Bandwidth(float(override_gbps), "--memory-bandwidth")
    if hardware.is_cuda:
        return gpu_bandwidth(hardware.device_name)
    return measure_cpu_bandwidth()


@dataclass(frozen=True)
class StepBytes:
    weights: int
    cross_attention_cache: int
    self_attention_cache: int

    @property
    def total(self) -> int:
        return self.weights + self.cross_attention_cache + self.self_attention_cache


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def decode_step_bytes(model, mean_position: float, batch_size: int = 1) -> StepBytes:
    """Bytes one decode step of a Whisper ``model`` must read at ``mean_position`` tokens of
    self-attention context (prompt + tokens generated so far, averaged over the steps), for
    ``batch_size`` utterances at once: the weights once, the caches of every utterance."""
    decoder = model.get_decoder()
    config = model.config
    seen: set[int] = set()
    weights = 0
    positions = decoder.embed_positions.weight
    for parameter in [*decoder.parameters(), *model.get_output_embeddings().parameters()]:
        if id(parameter) in seen:  # the tied projection is the embedding: read once
            continue
        seen.add(id(parameter))
        if parameter is positions:
            weights += _nbytes(parameter[0])  # one row per step
        else:
            weights += _nbytes(parameter)
    element = next(decoder.parameters()).element_size()
    layers, width = config.decoder_layers, config.d_model
    cross = batch_size * layers * 2 * config.max_source_positions * width * element
    own = int(batch_size * layers * 2 * mean_position * width * element)
    return StepBytes(weights, cross, own)


@dataclass(frozen=True)
class Roofline:
    bytes_per_step: int
    bandwidth_gbps: float
    bandwidth_source: str
    floor_ms: float  # per decode step
    measured_ms: float | None  # per decode step
    percent_of_roofline: float | None  # floor / measured x 100

    def as_dict(self) -> dict:
        return asdict(self)


def roofline(step_bytes: StepBytes, bandwidth: Bandwidth, measured_ms: float | None) -> Roofline:
    floor_ms = step_bytes.total / (bandwidth.gbps * 1e9) * 1e3
    percent = 100 * floor_ms / measured_ms if measured_ms else None
    return Roofline(step_bytes.total, bandwidth.gbps, bandwidth.source, floor_ms, measured_ms, percent)

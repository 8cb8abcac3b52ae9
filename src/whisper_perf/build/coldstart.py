"""Compile latency with an empty cache (cold) and with the cache that compile filled (warm).

Each is the first compiled call (compile + one full-budget ``generate()``) of a fresh Python
process, so nothing compiled earlier in the suite's own process can help it:

* cold: ``TORCHINDUCTOR_CACHE_DIR`` and ``TRITON_CACHE_DIR`` point to a new, empty folder, so
  the FX graph cache, the AOTAutograd cache, compiled kernels and dynamo's profile-guided state
  all start empty;
* warm: a second fresh process with the same folder, now filled by the cold one.

``python -m whisper_perf.build.coldstart --model M --variant V --device D --audio DIR`` is one such
process; ``measure_cold_and_warm`` runs the pair and removes the folder.  It costs about a
minute per variant on a 2-core CPU (a cold compile of tiny.en there takes ~50 s), so the suite
measures it once per environment and hardware unless asked (see ``--compile-latency``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MARK = "WHISPER_PERF_COLDSTART "
CHILD_TIMEOUT = 1800.0  # seconds a fresh process may take to build a variant (a large model, cold, on a CPU)


def _child(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whisper_perf.build.coldstart")
    parser.add_argument("--model", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--audio", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    from ..inputs.audio import load_audio_set
    from ..inputs.generation import GenerationSettings
    from ..inputs.hardware import detect_hardware
    from ..inputs.models import load_model, resolve_model
    from .compile_health import CompileWatch
    from .variant_specs import spec_for
    from .variants import build_variant

    hardware = detect_hardware(args.device)
    source = resolve_model(args.model)
    model, processor = load_model(source, hardware.device)
    utterance = load_audio_set(args.audio).utterances[0]
    ready = time.perf_counter() - start
    with CompileWatch() as watch:
        variant = build_variant(spec_for(args.variant), source.name, model, processor, hardware,
                                GenerationSettings(args.max_new_tokens), utterance)
    print(MARK + json.dumps({"first_call_seconds": variant.first_call_seconds, "setup_seconds": ready,
                             "compile": watch.health.as_dict()}), flush=True)
    return 0


def child_command(model: str, variant: str, device: str, audio: str | Path, max_new_tokens: int) -> list[str]:
    """The fresh process that loads ``model`` and builds ``variant`` (compile and full-budget
    warm-up) on its first utterance of ``audio``; with faulthandler on, so that a crash prints
    where it happened (whisper_perf.build.isolation reads it)."""
    return [sys.executable, "-X", "faulthandler", "-m", "whisper_perf.build.coldstart", "--model", model,
            "--variant", variant, "--device", device, "--audio", str(audio), "--max-new-tokens", str(max_new_tokens)]


def _run_child(command: list[str], cache: Path, timeout: float) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"), "TRITON_CACHE_DIR": str(cache / "triton")}
    env.pop("TORCHINDUCTOR_FORCE_DISABLE_CACHES", None)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"cold-start process failed (exit {proc.returncode}): " + " | ".join(tail))
    return json.loads(line[len(MARK):])


def measure_cold_and_warm(model: str, variant: str, device: str, audio: str | Path, max_new_tokens: int = 128,
                          timeout: float = CHILD_TIMEOUT, on_cold: Callable[[float], None] | None = None) -> dict:
    """{"cold_seconds", "warm_seconds", "cold_compile", "warm_compile"} of ``variant``'s first call;
    ``on_cold(seconds)`` is told the cold figure before the warm process starts (a run cut by a time
    limit there still shows it)."""
    command = child_command(model, variant, device, audio, max_new_tokens)
    with tempfile.TemporaryDirectory(prefix="whisper-perf-cold-") as folder:
        cold = _run_child(command, Path(folder), timeout)
        if on_cold is not None:
            on_cold(cold["first_call_seconds"])
        warm = _run_child(command, Path(folder), timeout)
    return {"cold_seconds": cold["first_call_seconds"], "warm_seconds": warm["first_call_seconds"],
            "cold_compile": cold["compile"], "warm_compile": warm["compile"]}


if __name__ == "__main__":
    from ..exiting import skip_final_collections

    skip_final_collections()
    sys.exit(_child())

"""Which machine are we on?  A stable key that baselines are filed under.

CUDA: ``cuda-sm_90-nvidia-h100-80gb-hbm3`` (compute capability, then the device name).
CPU:  ``cpu-x86_64-avx512-amd-epyc-t2`` (architecture, the vector ISA torch dispatches to, the
CPU's vendor and model family, threads): two cloud hosts with the same ISA (an AMD EPYC and an
Intel Xeon VM, both AVX-512) can run the same fixed workload at very different speeds.
Timings from two machines with different keys are never compared; within a key, a baseline entry
recorded on another CPU model (its provenance's ``device_name``) judges no absolute time either
(verdicts.absolute_terms).
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass, field

import torch


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# What a CPU's model name says besides its vendor and family.
_MODEL_NOISE = re.compile(r"\((?:R|TM)\)|\bCPU\b|\bProcessor\b|@.*$|\b\d+-Core\b", re.IGNORECASE)


def cpu_family(model_name: str) -> str:
    """``AMD EPYC 7B13`` -> ``amd-epyc``, ``Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz`` ->
    ``intel-xeon``: vendor and family, the first two words of the model name without the marks."""
    words = _MODEL_NOISE.sub(" ", model_name).split()
    return _slug(" ".join(words[:2])) or "unknown"


@dataclass(frozen=True)
class Hardware:
    """What the suite runs on; ``key`` files baselines, the rest is provenance."""

    key: str
    device: str  # "cuda" or "cpu": where models and tensors go
    device_name: str
    arch: str  # "sm_90" on CUDA, "x86_64-avx2" on CPU
    threads: int
    extra: dict = field(default_factory=dict)

    @property
    def is_cuda(self) -> bool:
        return self.device == "cuda"

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The key and what it stands for, as a run's output names the machine."""
        return f"{self.key} ({self.device_name}, {self.threads} thread{'' if self.threads == 1 else 's'})"


def cuda_hardware(index: int = 0) -> Hardware:
    props = torch.cuda.get_device_properties(index)
    arch = f"sm_{props.major}{props.minor}"
    name = props.name
    return Hardware(
        key=f"cuda-{arch}-{_slug(name)}",
        device="cuda",
        device_name=name,
        arch=arch,
        threads=torch.get_num_threads(),
        extra={
            "total_memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "cuda": torch.version.cuda,
        },
    )


def cpu_hardware() -> Hardware:
    machine = platform.machine().lower() or "unknown"
    isa = _slug(torch.backends.cpu.get_cpu_capability())
    threads = torch.get_num_threads()
    name = _cpu_model_name()
    return Hardware(
        key=f"cpu-{machine}-{isa}-{cpu_family(name)}-t{threads}",
        device="cpu",
        device_name=name,
        arch=f"{machine}-{isa}",
        threads=threads,
        extra={"logical_cpus": os.cpu_count()},
    )


def detect_hardware(device: str = "auto") -> Hardware:
    """The hardware for ``--device``: ``auto`` takes CUDA when there is one."""
    if device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"--device must be auto, cuda or cpu, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        from ..errors import EnvironmentUnavailable

        raise EnvironmentUnavailable("--device cuda was asked for, but torch sees no CUDA device "
                           f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}).")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return cuda_hardware()
    return cpu_hardware()


def software() -> dict:
    """Versions that a timing depends on, stored with every result and baseline."""
    import subprocess
    import sys

    import transformers

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "python": sys.version.split()[0], "cuda": torch.version.cuda, "commit": commit}
    if torch.cuda.is_available():
        versions["driver"] = nvidia_driver()
    return versions


def nvidia_driver() -> str | None:
    """The NVIDIA kernel driver's version (a GPU timing depends on it as on the CUDA runtime)."""
    from pathlib import Path

    try:  # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  ..."
        words = Path("/proc/driver/nvidia/version").read_text().split()
        return next((w for w in words if w[:1].isdigit() and "." in w), None)
    except OSError:
        return None

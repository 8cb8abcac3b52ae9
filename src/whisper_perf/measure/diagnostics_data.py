"""The diagnostics of one model x variant as one type, from the measurement (diagnostics.diagnose)
to the results file (record.results) and a recorded baseline (record.baseline_recording.baseline_fields).
Torch-free: reading a results file needs no torch."""

from __future__ import annotations

from dataclasses import dataclass

from ..build.compile_health import CompileHealth, CompileTotals


@dataclass
class Diagnostics:
    """Why a verdict is what it is (diagnostics.diagnose): compile health of warm-up and timed
    rounds, and, where the diagnostic calls ran, the phases, peak memory, roofline and profiled
    calls of the variant's build and of its reference (``variant``/``reference``: the builds'
    data as the results file keeps it), and the cold/warm compile latency (``cold_compile``, which
    the run adds once measured)."""

    first_call_seconds: float | None = None
    warmup_compile: CompileHealth | None = None
    timed_compile: CompileHealth | None = None
    warmup_seconds: float | None = None
    bandwidth: dict | None = None
    variant: dict | None = None
    reference: dict | None = None
    cold_compile: dict | None = None

    @property
    def compile(self) -> CompileTotals | None:
        """Warm-up and timed compile health combined; None for an eager build."""
        return CompileTotals.of(self.warmup_compile, self.timed_compile) if self.warmup_compile else None

    def peak_memory_bytes(self, build: str = "variant") -> int | None:
        memory = (getattr(self, build) or {}).get("peak_memory") or {}
        return memory.get("bytes")

    def memory_rise_bytes(self, build: str = "variant") -> int | None:
        """What the build's measured calls added: on CUDA the judged figure itself (a rise above
        the start), on a CPU the peak resident set less the resident set before the calls."""
        memory = (getattr(self, build) or {}).get("peak_memory") or {}
        if memory.get("bytes") is None or memory.get("start_bytes") is None:
            return None
        return memory["bytes"] if memory.get("kind", "").startswith("cuda") else memory["bytes"] - memory["start_bytes"]

    def to_dict(self) -> dict:
        data = {"first_call_seconds": self.first_call_seconds,
                "warmup_compile": self.warmup_compile.as_dict() if self.warmup_compile else None,
                "timed_compile": self.timed_compile.as_dict() if self.timed_compile else None}
        for name in ("warmup_seconds", "bandwidth", "variant", "reference", "cold_compile"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data

    @classmethod
    def from_dict(cls, data: dict | None) -> Diagnostics:
        data = data or {}
        return cls(first_call_seconds=data.get("first_call_seconds"),
                   warmup_compile=CompileHealth.from_dict(data.get("warmup_compile")),
                   timed_compile=CompileHealth.from_dict(data.get("timed_compile")),
                   **{k: data.get(k) for k in ("warmup_seconds", "bandwidth", "variant", "reference", "cold_compile")})

"""Compile health: what torch.compile did while a variant warmed up, and while it was timed.

Read from torch's own records, not from log text: dynamo's ``counters`` (graphs, graph breaks,
cache hits), its per-compile ``CompilationMetrics`` (compile time, recompile and CUDA-graph-skip
reasons) and ``guard_failures`` (the guard that failed, for every recompile).  A window is
watched with ``CompileWatch``; the suite watches two per compiled variant:

* warm-up: the graphs compiled, graph breaks (0 under ``fullgraph=True``, where a break is an
  error), recompiles while warming up (expected: the prompt step and the one-token steps may
  compile separately), CUDA graphs skipped and why (e.g. "skipping cudagraphs due to mutated
  inputs", which the long-form pipeline is known to cause);
* timed rounds: anything compiled here is a recompile after warm-up, which costs a compile
  inside the timings; it fails the compile-health check, naming the guard that failed.

These are private torch APIs (PyTorch's own benchmarks read them too); where one is missing in
an older torch the field is left empty rather than guessed.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field


def _dynamo_utils():
    try:
        from torch._dynamo import utils
    except ImportError:  # torch without dynamo
        return None
    return utils


def _short(reason: str, limit: int = 300) -> str:
    """The first line of a dynamo message (its full text holds hints and debug context)."""
    first = str(reason).strip().splitlines()[0] if str(reason).strip() else ""
    return first[:limit]


@dataclass
class CompileHealth:
    graphs: int = 0  # graphs compiled in the window
    frames_compiled: int = 0  # frame compilations (a recompile is one more)
    graph_breaks: int = 0
    graph_break_reasons: list[str] = field(default_factory=list)
    recompiles: int = 0
    recompile_reasons: list[str] = field(default_factory=list)
    cudagraph_skips: int = 0
    cudagraph_skip_reasons: list[str] = field(default_factory=list)
    compile_seconds: float = 0.0  # dynamo's whole-frame compile time in the window
    fx_graph_cache: dict = field(default_factory=dict)  # hit / miss / bypass counts

    def as_dict(self) -> dict:
        return asdict(self)


class CompileWatch:
    """``with CompileWatch() as watch: ...`` then ``watch.health``."""

    def __init__(self):
        self.health = CompileHealth()

    def __enter__(self):
        utils = _dynamo_utils()
        self._utils = utils
        if utils is None:
            return self
        self._counters = copy.deepcopy(dict(utils.counters))
        self._guard_failures = {code: len(v) for code, v in getattr(utils, "guard_failures", {}).items()}
        if hasattr(utils, "clear_compilation_metrics"):
            utils.clear_compilation_metrics()
        return self

    def _delta(self, group: str) -> dict:
        now = self._utils.counters.get(group, {})
        before = self._counters.get(group, {})
        return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}

    def __exit__(self, *exc):
        utils = self._utils
        if utils is None:
            return False
        h = self.health
        h.graphs = self._delta("stats").get("unique_graphs", 0)
        h.frames_compiled = self._delta("frames").get("total", 0)
        breaks = self._delta("graph_break")
        h.graph_breaks = sum(breaks.values())
        h.graph_break_reasons = sorted({_short(r) for r in breaks})
        inductor = self._delta("inductor")
        h.cudagraph_skips = inductor.get("cudagraph_skips", 0)
        h.fx_graph_cache = {k.removeprefix("fxgraph_cache_"): v for k, v in inductor.items()
                            if k.startswith("fxgraph_cache_")}
        metrics = utils.get_compilation_metrics() if hasattr(utils, "get_compilation_metrics") else []
        h.compile_seconds = round(sum(getattr(m, "entire_frame_compile_time_s", None) or 0.0 for m in metrics), 3)
        skips = [m.cudagraph_skip_reason for m in metrics if getattr(m, "cudagraph_skip_reason", None)]
        h.cudagraph_skip_reasons = sorted({_short(r) for r in skips})
        # every recompile appends the guard(s) that failed to guard_failures[code]
        reasons = []
        for code, entries in getattr(utils, "guard_failures", {}).items():
            new = entries[self._guard_failures.get(code, 0):]
            reasons += [f"{code.co_name}: {_short(r)}" for r in new]
        if not reasons:
            reasons = [_short(m.recompile_reason) for m in metrics if getattr(m, "recompile_reason", None)]
        h.recompile_reasons = reasons
        recompiled = [m for m in metrics if getattr(m, "recompile_reason", None)]
        h.recompiles = len(recompiled) if metrics else len(reasons)
        return False

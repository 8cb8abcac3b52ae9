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

CUDA-graph skips: torch counts every skip in ``counters["inductor"]["cudagraph_skips"]``, and
reports each one that has a reason through ``torch._inductor.cudagraph_utils.
log_cudagraph_skip_and_bump_counter``, which logs it as a warning.  Only the skips decided while
compiling also reach ``CompilationMetrics.cudagraph_skip_reason``; the ones decided at run time by
the CUDA-graph trees (mutated inputs seen on a call, the re-record limit) are only logged, so the
watch also reads that function's log records (``_SkipLog``).  Skips torch counts without logging
(every graph of a CPU-only ``reduce-overhead`` build, where CUDA graphs do not apply) are
``cudagraph_skips_unexplained``.

These are private torch APIs (PyTorch's own benchmarks read them too); where one is missing in
an older torch the field is left empty rather than guessed.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field

# The function through which torch reports a CUDA-graph skip with its reason, and the loggers it
# has written to: the "cudagraphs" artifact logger (torch 2.13), "perf_hints" in older releases.
SKIP_FUNCTION = "log_cudagraph_skip_and_bump_counter"
SKIP_LOGGERS = ("torch._inductor.cudagraph_utils.__cudagraphs", "torch._inductor.cudagraph_utils.__perf_hints")


def _dynamo_utils():
    try:
        from torch._dynamo import utils
    except ImportError:  # torch without dynamo
        return None
    return utils


def _short(reason: str, limit: int = 300) -> str:
    """The first line of a dynamo message (its full text holds hints and debug context)."""
    first = str(reason).strip().splitlines()[0].strip() if str(reason).strip() else ""
    return first[:limit]


@dataclass
class CompileHealth:
    graphs: int = 0  # graphs compiled in the window
    frames_compiled: int = 0  # frame compilations (a recompile is one more)
    graph_breaks: int = 0
    graph_break_reasons: list[str] = field(default_factory=list)
    recompiles: int = 0
    recompile_reasons: list[str] = field(default_factory=list)
    cudagraph_skips: int = 0  # compile-time and run-time skips, as torch counted them
    cudagraph_skip_reasons: list[str] = field(default_factory=list)  # from metrics and the skip log
    cudagraph_skips_unexplained: int = 0  # counted by torch without a reason
    compile_seconds: float = 0.0  # dynamo's whole-frame compile time in the window
    fx_graph_cache: dict = field(default_factory=dict)  # hit / miss / bypass counts

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> CompileHealth | None:
        """Fields an older results file lacks keep their defaults."""
        if data is None:
            return None
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class CompileTotals:
    """A compiled variant's compile health over warm-up and timed rounds together: the one place
    that combines the two windows (verdicts, baselines, reports and comparisons read it)."""

    graphs: int  # compiled in warm-up
    recompiles_warmup: int
    recompiles_timed: int  # anything compiled while timed is a recompile after warm-up
    graph_breaks: int
    graph_break_reasons: list[str]
    recompile_reasons_timed: list[str]
    cudagraph_skip_reasons: list[str]  # of both windows, sorted
    cudagraph_skips_warmup: int
    cudagraph_skips_timed: int
    cudagraph_skips_unexplained: int  # both windows

    @classmethod
    def of(cls, warmup: CompileHealth, timed: CompileHealth | None) -> CompileTotals:
        timed = timed or CompileHealth()
        return cls(
            graphs=warmup.graphs, recompiles_warmup=warmup.recompiles,
            recompiles_timed=max(timed.recompiles, timed.frames_compiled),
            graph_breaks=warmup.graph_breaks + timed.graph_breaks,
            graph_break_reasons=sorted(set(warmup.graph_break_reasons) | set(timed.graph_break_reasons)),
            recompile_reasons_timed=list(timed.recompile_reasons),
            cudagraph_skip_reasons=sorted(set(warmup.cudagraph_skip_reasons) | set(timed.cudagraph_skip_reasons)),
            cudagraph_skips_warmup=warmup.cudagraph_skips, cudagraph_skips_timed=timed.cudagraph_skips,
            cudagraph_skips_unexplained=warmup.cudagraph_skips_unexplained + timed.cudagraph_skips_unexplained)


class _SkipLog(logging.Filter):
    """The messages of torch's CUDA-graph skip function while attached.  A logger filter sees every
    record the logger handles, before any handler, and this one lets each through; only where
    inductor's warnings were silenced (TORCH_LOGS) is the level lowered, so that the skips are read
    (and printed) in the window anyway."""

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []
        self._levels: list[tuple[logging.Logger, int]] = []

    def attach(self) -> None:
        for name in SKIP_LOGGERS:
            logger = logging.getLogger(name)
            self._levels.append((logger, logger.level))
            if not logger.isEnabledFor(logging.WARNING):
                logger.setLevel(logging.WARNING)
            logger.addFilter(self)

    def detach(self) -> None:
        for logger, level in self._levels:
            logger.removeFilter(self)
            logger.setLevel(level)
        self._levels = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.funcName == SKIP_FUNCTION:
            self.messages.append(record.getMessage())
        return True


def _release_trace_log_from_pytest() -> None:
    """pytest (9.2+) attaches its log capture to every logger that does not propagate, torch's
    structured trace log ("torch.__trace") included.  torch writes that log whenever it has a
    handler (meant for ``TORCH_TRACE``), so under pytest every compile event became a record kept
    with its payload (graph code, tensor metadata): about a thousand per compiled tiny.en build, and
    as many empty DEBUG lines in a failure's captured log, burying the error.  (The compile time
    did not change measurably on a 2-core CPU.)  pytest's handlers are taken off it, torch's own
    stays; outside pytest, nothing changes."""
    trace_log = logging.getLogger("torch.__trace")
    for handler in list(trace_log.handlers):
        if type(handler).__module__.startswith("_pytest."):
            trace_log.removeHandler(handler)


class CompileWatch:
    """``with CompileWatch() as watch: ...`` then ``watch.health``."""

    def __init__(self):
        self.health = CompileHealth()
        self._skip_log = _SkipLog()

    def __enter__(self):
        _release_trace_log_from_pytest()
        utils = _dynamo_utils()
        self._utils = utils
        if utils is None:
            return self
        self._skip_log.attach()
        self._counters = copy.deepcopy(dict(utils.counters))
        self._guard_failures = {code: len(v) for code, v in getattr(utils, "guard_failures", {}).items()}
        if hasattr(utils, "clear_compilation_metrics"):
            utils.clear_compilation_metrics()
        return self

    def _delta(self, group: str) -> dict:
        now = self._utils.counters.get(group, {})
        before = self._counters.get(group, {})
        return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}

    def _cudagraph_skips(self, inductor: dict, metrics: list) -> None:
        h = self.health
        compiled = [m.cudagraph_skip_reason for m in metrics if getattr(m, "cudagraph_skip_reason", None)]
        logged = self._skip_log.messages  # compile-time skips are logged too: count each skip once
        h.cudagraph_skips = max(inductor.get("cudagraph_skips", 0), len(logged))
        h.cudagraph_skip_reasons = sorted({_short(r) for r in [*compiled, *logged]})
        h.cudagraph_skips_unexplained = max(h.cudagraph_skips - max(len(logged), len(compiled)), 0)

    def __exit__(self, *exc):
        utils = self._utils
        if utils is None:
            return False
        self._skip_log.detach()
        h = self.health
        h.graphs = self._delta("stats").get("unique_graphs", 0)
        h.frames_compiled = self._delta("frames").get("total", 0)
        breaks = self._delta("graph_break")
        h.graph_breaks = sum(breaks.values())
        h.graph_break_reasons = sorted({_short(r) for r in breaks})
        inductor = self._delta("inductor")
        h.fx_graph_cache = {k.removeprefix("fxgraph_cache_"): v for k, v in inductor.items()
                            if k.startswith("fxgraph_cache_")}
        metrics = utils.get_compilation_metrics() if hasattr(utils, "get_compilation_metrics") else []
        h.compile_seconds = round(sum(getattr(m, "entire_frame_compile_time_s", None) or 0.0 for m in metrics), 3)
        self._cudagraph_skips(inductor, metrics)
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

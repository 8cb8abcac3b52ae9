"""What one ``generate()`` call runs, counted: the device's own time and the code's fingerprint.

Profiled calls of each build, under ``torch.profiler`` (CPU activity, and CUDA activity on a
GPU), apart from the timed rounds (the profiler's own overhead must never reach a timing): on a
GPU ``DEVICE_ROUNDS`` calls of the variant and of its reference in alternation, whose device
times give the device-time checks their interval; on a CPU one call each, for the fingerprint.

* **device time** (CUDA): the time the GPU was busy (the union of its kernels', copies' and
  sets' intervals) and the sum of kernel durations, beside the counts of kernels, memcpys and
  CUDA-graph launches (``cudaGraphLaunch`` calls).  On a CPU there is no device apart from the
  host, so these are None and the device-time check says so.
* **fingerprint**: aten operators the host dispatched per decode step (top-level calls only:
  an operator called from inside another is that operator's business), device kernels per
  decode step and CUDA-graph launches per call (CUDA), and the distinct kernels inductor
  generated for the graphs this call ran (``cpp_fused_*`` on a CPU, ``triton_*`` on a GPU),
  read from the compiled graphs' own source code.  Kernel names carry their fused operators
  (``cpp_fused__softmax_add_3``) and a number inductor gives per graph, so they are compared as
  names without that number, with counts: a renumbering alone is no change.

Counts are exact for a given torch, transformers and input: where wall time is too noisy to
tell, a changed fingerprint names what the compiler now does differently.  The graphs a call
ran are the ``## Call CompiledFxGraph <key> ##`` ranges inductor records while a profiler is on
(torch's ``output_code.CompiledFxGraph``); their source is found by that key among the live
compiled graphs.  Both are private torch details: where one is missing the kernel list is None
("not available"), never guessed.  torch is imported only to profile, so that reading and comparing
fingerprints (the verdicts, merge, upgrade and bisect's reports) does not need it.
"""

from __future__ import annotations

import functools
import gc
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

GRAPH_CALL = re.compile(r"^## Call CompiledFxGraph (\S+) ##$")
# How inductor's output code declares each kernel it generated, on a CPU and on a GPU.
KERNEL_DEFINITION = re.compile(r"^(\w+) = async_compile\.(?:cpp_pybinding|cpp|triton)\(", re.M)
TRAILING_NUMBER = re.compile(r"_\d+$")
DEVICE_WORK = ("kernel", "gpu_memcpy", "gpu_memset")  # kineto's activity types of work on the GPU


@dataclass(frozen=True)
class CallProfile:
    """One profiled ``generate()`` call of a build."""

    decode_steps: int  # calls of the decoder's forward
    aten_ops: int  # top-level aten operator calls on the host
    compiled_graph_calls: int  # inductor graphs run
    generated_kernels: dict[str, int] | None  # kernel name (no per-graph number) -> count; None: not readable
    device_busy_seconds: float | None = None  # CUDA: union of device activity; None on a CPU
    kernel_seconds: float | None = None  # CUDA: summed kernel durations
    kernels: int | None = None  # CUDA: device kernels run
    memcpys: int | None = None
    cuda_graph_launches: int | None = None

    @property
    def aten_ops_per_step(self) -> float:
        return self.aten_ops / max(self.decode_steps, 1)

    @property
    def kernels_per_step(self) -> float | None:
        return None if self.kernels is None else self.kernels / max(self.decode_steps, 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "aten_ops_per_step": round(self.aten_ops_per_step, 2),
                "kernels_per_step": None if self.kernels is None else round(self.kernels_per_step, 2)}


def kernel_family(name: str) -> str:
    """``cpp_fused__softmax_add_3`` -> ``cpp_fused__softmax_add``: the name inductor derives from
    the fused operators, without the number it gives per graph."""
    return TRAILING_NUMBER.sub("", name)


def kernels_in_source(source: str) -> list[str]:
    """The kernels inductor generated in one graph's output code, by name."""
    return KERNEL_DEFINITION.findall(source)


def _graph_sources() -> dict[str, str]:
    """FX graph cache key -> output code of every compiled graph alive in this process."""
    try:
        from torch._inductor.output_code import CompiledFxGraph
    except ImportError:
        return {}
    found = {}
    for obj in gc.get_objects():
        if type(obj) is CompiledFxGraph:  # type(), not isinstance(): a dead weak proxy would raise
            key, source = getattr(obj, "_fx_graph_cache_key", None), getattr(obj, "source_code", None)
            if key and source:
                found[key] = source
    return found


def generated_kernels(graph_keys: list[str]) -> dict[str, int] | None:
    """Kernel family -> count over the graphs ``graph_keys`` (each graph once); None where a
    graph's source cannot be found."""
    if not graph_keys:
        return {}
    sources = _graph_sources()
    if any(key not in sources for key in set(graph_keys)):
        return None
    return dict(sorted(Counter(kernel_family(name) for key in sorted(set(graph_keys))
                               for name in kernels_in_source(sources[key])).items()))


def _is_aten(event) -> bool:
    return event.name.startswith("aten::")


# What torch's own event list leaves out of a profile (profiler_util._filter_name): utility
# operators and record_function's bookkeeping.
FILTERED_NAMES = frozenset({"[memory]", "[OutOfMemory]", "profiler::_record_function_enter",
                            "profiler::_record_function_enter_new", "profiler::_record_function_exit",
                            "aten::is_leaf", "aten::output_nr", "aten::_version"})


@dataclass(eq=False)
class Span:
    """An event's start and end in microseconds (as torch's ``Interval``)."""

    start: float
    end: float

    def elapsed_us(self) -> float:
        return self.end - self.start


@dataclass(eq=False)
class ProfiledEvent:
    """One event of a profiled call, with the fields of torch's ``FunctionEvent`` read here."""

    name: str
    device_type: object  # torch.autograd.DeviceType
    time_range: Span
    thread: int
    is_async: bool
    is_user_annotation: bool
    activity_type: str | None
    cpu_parent: ProfiledEvent | None = None
    cpu_children: list = field(default_factory=list)


def read_events(prof) -> list[ProfiledEvent]:
    """The events of a finished ``torch.profiler.profile``, each host event with its enclosing one
    (``cpu_parent``), as ``prof.events()`` gives them: read from kineto's raw events by torch's own
    rules (the names it filters out, async events left out of the nesting, a device runtime call
    on the thread of the operator that made it, nesting by interval per thread).  ``prof.events()``
    also builds input shapes, stacks and memory figures for every event: 1-2 s per profiled call of
    tiny.en on a CPU (44k events eager), paid for two counts."""
    from torch.autograd import DeviceType

    results = prof.profiler.kineto_results
    origin, events, frontend, linked = results.trace_start_ns(), [], {}, []
    for raw in results.events():
        name = raw.name()
        if name in FILTERED_NAMES or getattr(raw, "is_hidden_event", lambda: False)():
            continue
        thread = raw.start_thread_id()
        kind = getattr(raw, "activity_type", None)
        event = ProfiledEvent(name, raw.device_type(), Span((raw.start_ns() - origin) / 1e3, (raw.end_ns() - origin) / 1e3),
                              thread, raw.is_async() or thread != raw.end_thread_id(), raw.is_user_annotation(),
                              kind() if kind else None)
        events.append(event)
        link = raw.linked_correlation_id()
        if event.device_type == DeviceType.CPU and link > 0:
            linked.append((link, event))
        elif event.device_type == DeviceType.CPU and link == 0 and not event.is_async:
            frontend[raw.correlation_id()] = thread
    for link, event in linked:  # a device runtime call nests in the operator that made it
        event.thread = frontend.get(link, event.thread)
    _nest([e for e in events if e.device_type == DeviceType.CPU and not e.is_async])
    return _without_duplicates(events)


def _nest(events: list[ProfiledEvent]) -> None:
    """Each event's innermost enclosing event on its thread (profiler_util's _populate_cpu_children)."""
    threads = defaultdict(list)
    for event in events:
        threads[event.thread].append(event)
    for found in threads.values():
        stack: list[ProfiledEvent] = []
        for event in sorted(found, key=lambda e: (e.time_range.start, -e.time_range.end)):
            while stack and (event.time_range.start >= stack[-1].time_range.end
                             or event.time_range.end > stack[-1].time_range.end):
                stack.pop()
            if stack:
                event.cpu_parent = stack[-1]
                stack[-1].cpu_children.append(event)
            stack.append(event)


def _without_duplicates(events: list[ProfiledEvent]) -> list[ProfiledEvent]:
    """torch's event list drops an event that is the only child of a same-named parent, its
    children going to that parent (profiler_util's _remove_dup_nodes)."""
    dropped = {id(e) for e in events if e.cpu_parent is not None and e.cpu_parent.name == e.name
               and len(e.cpu_parent.cpu_children) == 1}
    kept = [e for e in events if id(e) not in dropped]
    for event in kept:
        while event.cpu_parent is not None and id(event.cpu_parent) in dropped:
            event.cpu_parent = event.cpu_parent.cpu_parent
    return kept


def host_counts(events) -> tuple[int, list[str]]:
    """(top-level aten operator calls, the compiled graphs run by key) of a profiled call's events
    (read_events, or torch's own ``prof.events()``): top-level, an aten operator whose enclosing
    event is not one (inside a record_function range inside one, as torch's tree has it, it counts)."""
    from torch.autograd import DeviceType

    host = [e for e in events if e.device_type == DeviceType.CPU]  # a GPU's timeline repeats the annotations
    graphs = [m.group(1) for m in (GRAPH_CALL.match(e.name) for e in host) if m]
    top_level = sum(_is_aten(e) and not (e.cpu_parent is not None and _is_aten(e.cpu_parent)) for e in host)
    return top_level, graphs


def _activity(event) -> str:
    """kineto's activity type of an event; by name where this torch's events do not carry it
    (``FunctionEvent.activity_type`` is recent): annotations projected onto the GPU's timeline
    (``## Call CompiledFxGraph ... ##`` spans the gaps between kernels) and synchronization records
    are not work."""
    found = getattr(event, "activity_type", None)
    if found:
        return found
    name = event.name
    if getattr(event, "is_user_annotation", False) or name.startswith("## "):
        return "gpu_user_annotation"
    if "sync" in name.lower():
        return "cuda_sync"
    return "gpu_memcpy" if name.startswith("Memcpy") else "gpu_memset" if name.startswith("Memset") else "kernel"


def _device_figures(events) -> dict:
    """Busy time, kernel time and counts of the device events (CUDA), and the host's graph launches."""
    from torch.autograd import DeviceType

    # the device's own work; not its synchronization records, which are time spent waiting
    device = [e for e in events if e.device_type == DeviceType.CUDA and _activity(e) in DEVICE_WORK]
    kind = _activity
    kernels = [e for e in device if kind(e) == "kernel"]
    spans = sorted((e.time_range.start, e.time_range.end) for e in device)
    busy, reach = 0.0, float("-inf")
    for start, end in spans:  # the union of the intervals: time the device was doing anything
        busy += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return {"device_busy_seconds": busy / 1e6, "kernel_seconds": sum(e.time_range.elapsed_us() for e in kernels) / 1e6,
            "kernels": len(kernels), "memcpys": sum(kind(e) == "gpu_memcpy" for e in device),
            "cuda_graph_launches": sum(e.device_type == DeviceType.CPU and e.name.startswith("cudaGraphLaunch")
                                       for e in events)}


def profile_call(variant, utterance) -> CallProfile:
    """Profile one ``generate()`` of ``variant`` on ``utterance`` (inputs prepared before)."""
    from torch.profiler import ProfilerActivity, profile

    from ..build.variants import synchronize

    cuda = variant.hardware.is_cuda
    inputs = variant.inputs(utterance)
    model, steps = variant.model, []
    original = model.forward

    @functools.wraps(original)
    def counted(*args, **kwargs):
        steps.append(1)
        return original(*args, **kwargs)

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    model.forward = counted
    try:
        synchronize(variant.hardware)
        with profile(activities=activities) as prof:
            variant.run(inputs)
            synchronize(variant.hardware)
    finally:
        model.forward = original
    events = read_events(prof)
    aten_ops, graphs = host_counts(events)
    return CallProfile(decode_steps=len(steps), aten_ops=aten_ops, compiled_graph_calls=len(graphs),
                       generated_kernels=generated_kernels(graphs), **(_device_figures(events) if cuda else {}))


# Profiled calls per build on a GPU.  Kernel durations of a fixed workload vary far less than the
# host's wall time (no scheduler, no Python in them), so a few rounds give a tight interval; each
# profiled call of an eager build records thousands of events, which the profiler takes seconds to
# read back, so more would cost a short GPU session minutes.
DEVICE_ROUNDS = 5


def profile_rounds(variant, reference, unit, rounds: int) -> tuple[list[CallProfile], list[CallProfile]]:
    """``rounds`` profiled calls of ``variant`` and of its ``reference`` (None: no calls) on
    ``unit``, in alternation as the timed rounds are, so that a drift of the device's clocks
    reaches both builds alike and the device-time speedup pairs them by round."""
    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(profile_call(variant, unit))
        if reference is not None:
            theirs.append(profile_call(reference, unit))
    return mine, theirs


def profile_summary(profiles: list[CallProfile]) -> dict:
    """What the results file keeps of a build's profiled calls: the first call's figures
    (CallProfile.as_dict, its fingerprint), every call's device-busy milliseconds on CUDA
    (``device_busy_rounds_ms``, the device-time checks' samples), and ``fingerprint_varies`` when
    the calls did not all run the same code (a recompile or a CUDA-graph re-record between them)."""
    data = profiles[0].as_dict()
    data["calls_profiled"] = len(profiles)
    if profiles[0].device_busy_seconds is not None:
        data["device_busy_rounds_ms"] = [round(1e3 * p.device_busy_seconds, 4) for p in profiles]
    prints = [fingerprint_of(p.as_dict()) for p in profiles]
    if any(found != prints[0] for found in prints):
        data["fingerprint_varies"] = True
    return data


def fingerprint_of(profile: dict | None) -> dict | None:
    """What a baseline keeps of a CallProfile (as_dict) to tell whether the compiled code changed;
    None where the build was not profiled."""
    if not profile:
        return None
    data = {"aten_ops_per_step": profile["aten_ops_per_step"]}
    if profile.get("generated_kernels") is not None:
        data["generated_kernels"] = [f"{name} x{count}" for name, count in profile["generated_kernels"].items()]
    if profile.get("kernels_per_step") is not None:
        data["kernels_per_step"] = profile["kernels_per_step"]
        data["cuda_graph_launches_per_call"] = profile["cuda_graph_launches"]
        data["memcpys_per_call"] = profile["memcpys"]
    return data


def fingerprint_changes(expected: dict, found: dict) -> list[str]:
    """What differs between two fingerprints (fingerprint_of), one phrase each; [] when none does.
    A figure one side has and the other not is a change too (a torch whose compiled graphs cannot
    be read any more must not read as "unchanged")."""
    changes = [f"{key} {'no longer measured' if key in expected else 'newly measured'}"
               for key in sorted(set(expected) ^ set(found))]
    before, after = set(expected.get("generated_kernels", [])), set(found.get("generated_kernels", []))
    if "generated_kernels" in expected and "generated_kernels" in found and before != after:
        added, removed = sorted(after - before), sorted(before - after)
        changes.append("generated kernels" + (f" added: {', '.join(added)}" if added else "")
                       + (";" if added and removed else "") + (f" removed: {', '.join(removed)}" if removed else ""))
    for key, what in (("aten_ops_per_step", "aten ops per decode step"), ("kernels_per_step", "kernels per decode step"),
                      ("cuda_graph_launches_per_call", "CUDA-graph launches per call"),
                      ("memcpys_per_call", "memcpys per call")):
        if key in expected and key in found and expected[key] != found[key]:
            changes.append(f"{what} {expected[key]:g} -> {found[key]:g}")
    return changes

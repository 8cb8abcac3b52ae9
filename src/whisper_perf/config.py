"""What a run was asked to do: the suite's options, checked once and frozen.

Built from the command line by ``RunConfig.from_options`` (called by the pytest plugin); every
other module reads it and none changes it.  What a run accumulates lives in session.RunSession.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .build.variant_specs import VARIANTS
from .errors import UsageError
from .inputs.generation import GenerationSettings
from .measure.contention import OTHERS_BUSY_CORES, parse_busy_threshold

# What a run covers when --variant / --limit do not say.  On a GPU every variant over the whole
# audio set takes minutes; on a CPU the same would take half an hour (the 30-s-padded encoder
# costs about a second per utterance), so the CPU default is the two compiled variants (each
# timed against its eager build) over 6 utterances spread over the set.
PROFILES = {
    "quick": {"variants": ("compiled", "compiled-static"), "utterances": 6},
    "full": {"variants": tuple(VARIANTS), "utterances": None},
}

MAX_NEW_TOKENS = 440  # Whisper's decoder holds 448 positions; the prompt takes some


@dataclass(frozen=True)
class RunConfig:
    models: tuple[str, ...]
    variants: tuple[str, ...]
    dataset: str | None
    long_dataset: str | None
    device: str
    rounds: int
    limit: int | None  # utterances spread over the set; None: all
    settings: GenerationSettings
    baselines: Path
    results_dir: Path
    record: bool = False
    confidence: float = 0.95
    inject_slowdown: float = 0.0
    inject_on: str = "host"  # --inject-on: where the slowdown is (sensitivity.make_slowdown)
    profile: str = "full"
    busy_retries: int | None = None
    busy_threshold: float | None = OTHERS_BUSY_CORES  # cores others may use before a round is busy; None: off
    memory_bandwidth: float | None = None  # GB/s
    compile_latency: str = "auto"
    isolate_builds: str = "auto"  # build compiled variants in a fresh process first (whisper_perf.build.isolation)
    strict: bool = False  # a speed check not judged fails the run (exit 7)
    detect: float | None = None  # adaptive rounds until this slowdown is detectable (sequential intervals)
    max_minutes: float | None = None  # with detect: timing budget per variant

    @classmethod
    def from_options(cls, get: Callable[[str], object], rootpath: Path, gpu_run: Callable[[str], bool]) -> RunConfig:
        """Check the options (``get``: pytest's ``config.getoption``); UsageError names the bad one."""
        from .build.sensitivity import check_allowed
        from .files import check_writable

        rounds, limit = get("--rounds"), get("--limit")
        if rounds is None:
            rounds = 6 if get("--record") else 3  # a baseline more precise than the runs judged against it
        if rounds < 1:
            raise UsageError(f"--rounds must be at least 1, not {rounds}")
        busy_threshold = parse_busy_threshold(get("--busy-threshold"))
        if (get("--busy-retries") or 0) < 0:
            raise UsageError(f"--busy-retries must be 0 or more, not {get('--busy-retries')}")
        if limit is not None and limit < 0:
            raise UsageError(f"--limit must be a positive count (0: all), not {limit}")
        bandwidth = get("--memory-bandwidth")
        if bandwidth is not None and not bandwidth > 0:
            raise UsageError(f"--memory-bandwidth must be a positive number of GB/s, not {bandwidth}")
        confidence = get("--confidence")
        if not 0.5 <= confidence < 1:
            raise UsageError(f"--confidence must be in [0.5, 1), not {confidence}")
        models = checked_inputs(get)
        slowdown = get("--inject-slowdown")
        check_allowed(slowdown, get("--inject-on"), get("--device"))
        if get("--strict-gate") and busy_threshold is None:
            raise UsageError("--strict-gate gates on the verdicts, and --busy-threshold off would let a busy machine's "
                             "timings judge them; drop one (the default threshold is 0.25 cores)")
        if get("--strict-gate") and get("--record"):
            raise UsageError("--strict-gate gates a judged run; a recording (--record) judges nothing. "
                             "Use one or the other.")
        if slowdown and get("--record"):
            raise UsageError("--record with --inject-slowdown would store a deliberately slowed timing as the "
                             "baseline; use one or the other.")
        detect, max_minutes = adaptive_options(get("--detect"), get("--max-minutes"))
        if detect is not None:
            from .judge.sequential import LOOKS

            rounds = max(rounds, LOOKS[0])  # the first look: --rounds is the least an adaptive run times
        results_dir = Path(get("--results-dir") or rootpath / "results" / "runs")
        check_writable(results_dir)
        profile = get("--profile")
        if profile == "auto":  # last: asking whether a GPU is here imports torch
            profile = "full" if gpu_run(get("--device")) else "quick"
        chosen = PROFILES[profile]
        return cls(
            models=models, variants=tuple(dict.fromkeys(get("--variant") or chosen["variants"])),
            dataset=get("--dataset"), long_dataset=get("--long-dataset"), device=get("--device"),
            rounds=rounds, limit=chosen["utterances"] if limit is None else (limit or None),
            settings=generation_settings(get),
            baselines=Path(get("--baselines") or rootpath / "baselines"), results_dir=results_dir,
            record=get("--record"), confidence=confidence, inject_slowdown=slowdown, inject_on=get("--inject-on"), profile=profile,
            busy_retries=get("--busy-retries"), busy_threshold=busy_threshold, memory_bandwidth=bandwidth, compile_latency=get("--compile-latency"),
            isolate_builds=get("--isolate-builds"), strict=get("--strict-gate"), detect=detect, max_minutes=max_minutes)

    def isolates_builds(self, on_cuda: bool) -> bool:
        """Whether compiled variants are first built in a fresh process: on a GPU unless told
        otherwise (a crash there was seen; on a CPU it would cost a compile per variant)."""
        return self.isolate_builds == "always" or (self.isolate_builds == "auto" and on_cuda)

    def record_command(self) -> str:
        """The command that re-records what this run measured."""
        args = [f"--model {m}" for m in self.models if m != "tiny.en"]
        if self.variants != PROFILES[self.profile]["variants"]:
            args += [f"--variant {v}" for v in self.variants]
        if self.dataset:
            args.append(f"--dataset {self.dataset}")
        if self.settings.fixed_work:
            args.append("--fixed-work")
        if self.settings.max_new_tokens != 128:
            args.append(f"--max-new-tokens {self.settings.max_new_tokens}")
        if self.settings.batch_size != 1:
            args.append(f"--batch {self.settings.batch_size}")
        if self.limit != PROFILES[self.profile]["utterances"]:
            args.append(f"--limit {self.limit}" if self.limit else "--limit 0")
        if self.profile == "full":
            args.insert(0, "--profile full")
        return "nox -s record" + (" -- " + " ".join(args) if args else "")

    def as_dict(self) -> dict:
        """What the results file keeps of the options."""
        return {"profile": self.profile, "models": list(self.models), "variants": list(self.variants),
                "rounds": self.rounds, "utterances": self.limit, "confidence": self.confidence,
                "record": self.record, "inject_slowdown": self.inject_slowdown, "inject_on": self.inject_on, "strict": self.strict,
                "busy_threshold": self.busy_threshold,
                **({"detect": self.detect, "max_minutes": self.max_minutes} if self.detect is not None else {}),
                **self.settings.as_dict()}


def checked_inputs(get) -> tuple[str, ...]:
    """The models to run, once --model, --fixed-work, --dataset and --long-dataset are checked (what
    the run reads, before it loads any of it)."""
    from .inputs.architectures import check_options as check_architectures
    from .inputs.audio import check_audio_spec
    from .inputs.models import check_model_spec

    models = tuple(dict.fromkeys(get("--model") or ["tiny.en"]))
    for model in models:
        check_model_spec(model)
    check_architectures(list(models), get("--fixed-work"))
    for option in ("--dataset", "--long-dataset"):
        if get(option):
            check_audio_spec(get(option), option)
    return models


def generation_settings(get) -> GenerationSettings:
    """--max-new-tokens, --fixed-work and --batch, checked."""
    budget, batch = get("--max-new-tokens"), get("--batch")
    if not 1 <= budget <= MAX_NEW_TOKENS:
        raise UsageError(f"--max-new-tokens must be between 1 and {MAX_NEW_TOKENS} (Whisper's decoder holds 448 "
                         f"positions, the prompt takes some), not {budget}")
    if batch < 1:
        raise UsageError(f"--batch must be at least 1 utterance per generate() call, not {batch}")
    return GenerationSettings(max_new_tokens=budget, fixed_work=get("--fixed-work"), batch_size=batch)


DEFAULT_MAX_MINUTES = 4.0  # the 2-core CPU's warm budget for a default run


def adaptive_options(detect: float | None, max_minutes: float | None) -> tuple[float | None, float | None]:
    """--detect and --max-minutes, checked; the budget defaults to DEFAULT_MAX_MINUTES."""
    if detect is None:
        if max_minutes is not None:
            raise UsageError("--max-minutes bounds the adaptive rounds of --detect; give --detect too, e.g. --detect 0.05")
        return None, None
    if not 0 < detect < 1:
        raise UsageError(f"--detect is the slowdown to be able to detect, a fraction in (0, 1) such as 0.05, not {detect}")
    if max_minutes is not None and not max_minutes > 0:
        raise UsageError(f"--max-minutes must be a positive number of minutes, not {max_minutes}")
    return detect, DEFAULT_MAX_MINUTES if max_minutes is None else max_minutes

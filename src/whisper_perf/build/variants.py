"""The builds of one Whisper model that the suite times against each other.

===================  ==============================================================  =========
variant              what it is                                                      compared to
===================  ==============================================================  =========
eager                ``model.generate()`` as loaded (SDPA attention, dynamic cache)  -
compiled             ``torch.compile(model.forward, fullgraph=True)``, default mode  eager
compiled-static      the published recipe: ``mode="reduce-overhead"``, fullgraph,    eager
                     static cache (``cache_implementation="static"``: ``generate()``
                     makes it), attention under ``sdpa_kernel(SDPBackend.MATH)``
compiled-static-     the same recipe with a static cache the suite builds once,      eager
prebuilt             outside the compiled region, resets before every call and
                     passes to ``generate()`` (see ``static_cache``): what works
                     with CUDA graphs on transformers releases that build the cache
                     per call
pipeline             chunked long-form ASR pipeline (``chunk_length_s=30``), eager   -
pipeline-compiled    the same pipeline over the compiled-static recipe               pipeline
pipeline-compiled-   the same pipeline over compiled-static-prebuilt                 pipeline
prebuilt
===================  ==============================================================  =========

``compiled-static`` stays the published recipe verbatim: where it fails on a stack, that is a
finding the run reports, with ``compiled-static-prebuilt`` measured beside it.

A compiled variant is timed against its eager reference run with the same attention backend
(``eager`` under MATH SDPA for ``compiled-static``, shown as ``eager+math``), so that its speedup
measures compilation alone: on CPU, MATH attention makes the 30-s-padded encoder about twice
as slow as the default SDPA kernel, which would otherwise be counted against compile.

Every variant gets its own module object sharing the loaded weights, so compiling one never
changes another.  Compiled variants are compiled and warmed up once, outside any timing.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field

import torch

from ..inputs.audio import SAMPLE_RATE, Batch, Utterance
from ..inputs.generation import GenerationSettings, configure, text_token_ids
from ..inputs.hardware import Hardware
from .variant_specs import VariantSpec


def unsupported_reason(spec: VariantSpec, hardware: Hardware) -> str | None:
    """Why ``spec`` cannot run here, or None.  Such a variant is skipped with this reason."""
    if spec.compiled:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return f"torch.compile is not supported on this platform (torch {torch.__version__})"
    return None


def share_weights_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A new module tree (own forward, own generation config) over the same parameter storage."""
    memo = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return copy.deepcopy(model, memo)


def own_code(method, tag: str):
    """``method`` over a copy of its function's code object, named ``<name>__<tag>``.

    dynamo keeps its compiled graphs, guards and recompile count per code object, across every
    ``torch.compile`` wrapper of it.  Every compiled variant compiles the same
    ``WhisperForConditionalGeneration.forward``: measured on the CPU, the fifth compiled variant of
    one process hit the recompile limit (8) with ``FailOnRecompileLimitHit`` (without fullgraph it
    would have run eager silently), and each call of a later variant checked the guards of the
    earlier ones.  With its own code object, each variant compiles, recompiles and is limited
    on its own; its own name keeps it apart where torch keys state by code equality or name
    (``guard_failures``, automatic-dynamic shapes) and names the variant in dynamo's messages."""
    import types

    function = method.__func__
    code = function.__code__
    own = code.replace(co_name=f"{code.co_name}__{tag.replace('-', '_').replace('+', '_')}")
    copy_ = types.FunctionType(own, function.__globals__, function.__name__,
                               function.__defaults__, function.__closure__)
    copy_.__kwdefaults__ = function.__kwdefaults__
    copy_.__dict__.update(function.__dict__)
    copy_.__qualname__, copy_.__doc__ = function.__qualname__, function.__doc__
    return types.MethodType(copy_, method.__self__)


@dataclass
class Transcript:
    token_ids: list[int]  # text tokens only (see generation.text_token_ids)
    text: str


@dataclass
class Variant:
    """One runnable build: ``inputs(utt)`` outside the timer, ``run(inputs)`` inside it."""

    spec: VariantSpec
    model_name: str
    model: torch.nn.Module
    processor: object
    hardware: Hardware
    settings: GenerationSettings
    generate_kwargs: dict = field(default_factory=dict)
    pipeline: object = None
    prebuilt: object = None  # static_cache.PrebuiltCache of a prebuilt_cache variant
    injected_slowdown: float = 0.0  # --inject-slowdown (sensitivity checks only)
    injected_on: str = "host"  # --inject-on: a host-side busy-wait, or GPU work
    slowdown: object = None  # sensitivity.Slowdown when injected_slowdown
    first_call_seconds: float | None = None  # compile + first run (compiled variants)
    warmup_seconds: float | None = None
    warmup_compile: object = None  # compile_health.CompileHealth of the warm-up (compiled variants)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def describe(self) -> dict:
        """What was timed, stored with every result."""
        return {
            **self.spec.as_dict(),
            "model": self.model_name,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": self.hardware.device,
            "preprocessing_timed": self.spec.long_form,  # the pipeline extracts features itself
            "attention": "sdpa-math" if self.spec.math_sdpa else "sdpa",
            **self.settings.as_dict(),
            "batch_size": self.batch_size,
            **({"injected_slowdown": self.injected_slowdown, "injected_on": self.injected_on, **self.slowdown.evidence()}
               if self.injected_slowdown else {}),
        }

    def _attention(self):
        if self.spec.math_sdpa:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            return sdpa_kernel(SDPBackend.MATH)
        return contextlib.nullcontext()

    @property
    def batch_size(self) -> int:
        """Utterances per generate() call; a pipeline takes one long clip per call."""
        return 1 if self.spec.long_form else self.settings.batch_size

    def inputs(self, unit: Utterance | Batch):
        """Everything before the timed call: feature extraction (every utterance padded to 30 s,
        as the feature extractor does, so a batch needs no attention mask) and the copy to the
        device."""
        if self.spec.long_form:
            return {"raw": unit.audio.copy(), "sampling_rate": SAMPLE_RATE}
        if len(unit.members) != self.batch_size:
            raise ValueError(f"{self.name} is built for batches of {self.batch_size}, given {len(unit.members)}")
        features = self.processor([u.audio for u in unit.members], sampling_rate=SAMPLE_RATE,
                                  return_tensors="pt").input_features
        return features.to(self.hardware.device, dtype=self.dtype)

    def run(self, inputs):
        """The timed call: ``generate()`` (or the pipeline).  Returns its raw output."""
        if self.slowdown is not None:
            self.slowdown.start()
        with torch.inference_mode(), self._attention():
            if self.spec.long_form:
                # num_beams=1: the ASR pipeline otherwise applies its own default of 5 beams
                # (the short-form variants, and the published numbers, decode greedily).
                return self.pipeline(inputs, generate_kwargs={**self.generate_kwargs, "num_beams": 1})
            return self.model.generate(inputs, **self.generate_kwargs)

    def transcript(self, output) -> Transcript:
        tokenizer = self.processor.tokenizer
        if self.spec.long_form:
            text = output["text"]
            return Transcript(text_token_ids(tokenizer(text, add_special_tokens=False).input_ids, tokenizer.eos_token_id), text)
        ids = text_token_ids(output[0], tokenizer.eos_token_id)
        return Transcript(ids, tokenizer.decode(ids, skip_special_tokens=True))

    def transcripts(self, output, unit: Utterance | Batch) -> tuple[dict[str, Transcript], int]:
        """Each scored utterance's transcript of one call, and the text tokens the call generated
        (its top-ups' too: they were work of the call)."""
        if isinstance(unit, Utterance):
            transcript = self.transcript(output)
            return {unit.id: transcript}, len(transcript.token_ids)
        found = [self.transcript(row[None]) for row in output]
        scored = {u.id: t for u, t in zip(unit.scored, found)}
        return scored, sum(len(t.token_ids) for t in found)

    def warm_up(self, utterance: Utterance, calls: int = 3, full_budget: bool = True) -> None:
        """Compile and settle outside any timing: ``calls`` calls, each generating max_new_tokens
        tokens with ``full_budget`` (so that every sequence length is compiled before timing),
        then one call with the timed settings."""
        fixed = GenerationSettings(self.settings.max_new_tokens, fixed_work=full_budget,
                                   language=self.settings.language)
        timed_kwargs = self.generate_kwargs
        self.generate_kwargs = configure(self.model, fixed)
        try:
            start = time.perf_counter()
            for call in range(calls):
                self.run(self.inputs(utterance))
                synchronize(self.hardware)
                if call == 0:
                    self.first_call_seconds = time.perf_counter() - start
        finally:
            self.generate_kwargs = configure(self.model, self.settings)
            assert self.generate_kwargs == timed_kwargs
        if full_budget:
            # and once as the timed calls will run, so that nothing on their path is a first time
            self.run(self.inputs(utterance))
            synchronize(self.hardware)
        self.warmup_seconds = time.perf_counter() - start


def free_memory(hardware: Hardware) -> None:
    """After a failed build or measurement, give its memory back before the next variant runs."""
    import gc

    gc.collect()
    if hardware.is_cuda:
        torch.cuda.empty_cache()


def synchronize(hardware: Hardware) -> None:
    if hardware.is_cuda:
        torch.cuda.synchronize()


def build_variant(spec: VariantSpec, model_name: str, base_model, processor, hardware: Hardware,
                  settings: GenerationSettings, warmup_utterance: Utterance | None = None,
                  inject_slowdown: float = 0.0, compiled_original: "Variant | None" = None,
                  inject_on: str = "host") -> Variant:
    """Build (compile, warm up) one variant.  A sensitivity twin (``spec.slowed_of``) calls the
    already compiled ``forward`` of ``compiled_original``, made slower by ``inject_slowdown``, so
    that the unchanged and the slowed build are measured in the same run from one compilation."""
    model = share_weights_copy(base_model)
    if spec.static_cache:
        model.generation_config.cache_implementation = "static"
    slowdown = _compile(spec, model, hardware, (inject_slowdown, inject_on), compiled_original) if spec.compiled else None
    variant = Variant(spec, model_name, model, processor, hardware, settings, configure(model, settings),
                      injected_slowdown=inject_slowdown if slowdown else 0.0, slowdown=slowdown,
                      injected_on=inject_on)
    if spec.prebuilt_cache:
        from .static_cache import PrebuiltCache

        # a twin runs the original's compiled forward, whose CUDA graphs hold the original's cache
        shared = compiled_original.prebuilt.cache if spec.slowed_of else None
        variant.prebuilt = PrebuiltCache(model, settings.max_new_tokens, shared, variant.batch_size)
        model.generate = variant.prebuilt.wrap(model.generate)
    if spec.long_form:
        from transformers import pipeline

        variant.pipeline = pipeline(
            "automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor, chunk_length_s=30, batch_size=1,
            device=torch.device(hardware.device))
    if warmup_utterance is not None:
        # reduce-overhead records CUDA graphs on the 2nd and 3rd calls; on CPU one call compiles all.
        # An eager build needs no full-budget warm-up: one ordinary call settles its allocations;
        # nor does a slowed twin, whose compiled forward is already warm.
        from .compile_health import CompileWatch

        with CompileWatch() as watch:
            variant.warm_up(warmup_utterance, calls=3 if spec.compiled and hardware.is_cuda else 1,
                            full_budget=spec.compiles_itself)
        if slowdown is not None:
            slowdown.settle()  # sized from the warm-up, before any timed call
        variant.warmup_compile = watch.health if spec.compiled else None
    return variant


def _compile(spec: VariantSpec, model, hardware: Hardware, injection: tuple[float, str], compiled_original):
    """Compile ``model.forward`` as ``spec`` says (or, for a sensitivity twin, take the original's
    compiled forward and slow it down); returns the twin's ``Slowdown`` or None."""
    if not spec.slowed_of:
        model.forward = torch.compile(own_code(model.forward, spec.name), mode=spec.compile_mode, fullgraph=True)
        return None
    inject_slowdown, inject_on = injection
    if compiled_original is None or not inject_slowdown:
        raise ValueError(f"{spec.name} needs the compiled {spec.slowed_of} and a slowdown to inject")
    from .sensitivity import make_slowdown

    slowdown = make_slowdown(inject_slowdown, inject_on, hardware, lambda: synchronize(hardware))
    model.forward = slowdown.wrap(compiled_original.model.forward)
    return slowdown

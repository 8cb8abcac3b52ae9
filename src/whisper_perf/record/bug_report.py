"""A folder to file upstream for every variant that crashed, failed to build, recompiled while
timed, or regressed: ``results/runs/<key>/<run>-repro/<model>-<variant>/``.

* ``repro.py``: standalone (torch, transformers, numpy; never whisper_perf).  It builds the model
  and variant as the suite did, from the settings the suite used (compile mode, attention
  backend, static or prebuilt cache, the generation config of the warm-up and of the timed calls,
  an injected slowdown) and the suite's own code for the prebuilt cache and the slowdown, copied
  in verbatim.  It runs what failed: build and call (a failure or crash), the timed calls
  counting graphs compiled (a recompile), or eager and the variant side by side in a plain loop
  (a regression).
* ``inputs.npz``: the run's audio for it (16 kHz float32; one utterance unless it times).
* ``env.txt``: ``python -m torch.utils.collect_env`` and the transformers version.
* ``report.md``: a draft issue: title, what was expected and what was seen, the verdict with its
  interval, the error's last frames, and how to run ``repro.py``.

The settings are taken when a variant is first built (``setup_of``), before it can fail.
"""

from __future__ import annotations

import copy
import inspect
import json
import subprocess
import sys
import types
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..judge.verdicts import Outcome
from .results import RunResult

MAX_TIMED_UTTERANCES = 6  # a regression's plain loop: enough to see it, a small inputs.npz


@dataclass
class BuildSetup:
    """What repro.py needs of one model x variant, as the run built it."""

    model: str  # what from_pretrained was given ("" for arch: models, built here from random weights)
    device: str
    dtype: str
    max_new_tokens: int
    variant: dict  # build settings of the variant (see _build_settings)
    reference: dict | None  # those of its eager reference
    warmup_calls: int
    batch_size: int = 1  # utterances per generate() call (--batch)
    audio: list = field(default_factory=list)  # np.ndarray per utterance: the warm-up one first


def _build_settings(spec, base_model, settings, inject_slowdown: float, inject_on: str = "host") -> dict:
    """Compile mode, attention, caches and the generation config and kwargs of the warm-up and of
    the timed calls, exactly as variants.build_variant and Variant.warm_up set them."""
    from ..inputs.generation import GenerationSettings, configure

    def configured(for_settings) -> tuple[dict, dict]:
        holder = types.SimpleNamespace(generation_config=copy.deepcopy(base_model.generation_config))
        if spec.static_cache:
            holder.generation_config.cache_implementation = "static"
        kwargs = configure(holder, for_settings)
        return holder.generation_config.to_dict(), kwargs

    timed, timed_kwargs = configured(settings)
    warm, warm_kwargs = configured(GenerationSettings(settings.max_new_tokens, fixed_work=True,
                                                      language=settings.language))
    return {"name": spec.name, "compile_mode": spec.compile_mode, "math_sdpa": spec.math_sdpa,
            "prebuilt_cache": spec.prebuilt_cache, "static_cache": spec.static_cache,
            "injected_slowdown": inject_slowdown if spec.slowed_of else 0.0, "injected_on": inject_on,
            "generation_config": timed, "generate_kwargs": timed_kwargs,
            "generation_config_warmup": warm, "generate_kwargs_warmup": warm_kwargs}


def setup_of(spec, reference, source, base_model, settings, hardware, utterances,
             inject_slowdown: float, inject_on: str = "host") -> BuildSetup | None:
    """The settings of ``spec`` (and its eager ``reference``) for a repro.py; None where repro.py
    cannot rebuild the model alone (random-weight ``arch:`` shapes) or the variant (pipelines)."""
    if source.random_weights or spec.long_form:
        return None
    return BuildSetup(model=source.location, device=hardware.device,
                      dtype=str(base_model.dtype).removeprefix("torch."), max_new_tokens=settings.max_new_tokens,
                      variant=_build_settings(spec, base_model, settings, inject_slowdown, inject_on),
                      reference=_build_settings(reference, base_model, settings, 0.0) if reference else None,
                      warmup_calls=3 if spec.compiled and hardware.is_cuda else 1,
                      batch_size=settings.batch_size, audio=[u.audio for u in utterances])


@dataclass(frozen=True)
class Finding:
    """Why a model x variant gets a bug-report folder."""

    model: str
    variant: str
    kind: str  # "crash", "failure", "recompile" or "regression"
    title: str
    seen: str
    expected: str


def findings(run: RunResult) -> list[Finding]:
    """One finding per model x variant: its failure, else its recompile, else its first regression."""
    found: dict[tuple, Finding] = {}
    for f in run.failures:
        crash = "killed by SIG" in f.error
        found.setdefault((f.model, f.variant), Finding(
            f.model, f.variant, "crash" if crash else "failure",
            f"{f.model} {f.variant} {'crashes' if crash else 'fails'} ({f.stage})", f.error,
            "the variant builds and runs, as eager does on the same stack"))
    regressions = [r for r in run.verdicts if r.verdict.outcome is Outcome.REGRESSION]
    # a recompile while timed first, whatever the order of the checks: it explains the slower times
    regressions.sort(key=lambda r: not _recompiles(r.verdict))
    for r in regressions:
        v = r.verdict
        if (r.model, r.variant) in found:
            continue
        recompile = _recompiles(v)
        found[(r.model, r.variant)] = Finding(
            r.model, r.variant, "recompile" if recompile else "regression",
            f"{r.model} {r.variant}: {'recompiles while timed' if recompile else v.check + ' regressed'}",
            v.message, "no recompile after warm-up" if recompile else _expected(v.check))
    return list(found.values())


def _recompiles(verdict) -> bool:
    return verdict.check == "compile health" and "recompile" in verdict.message


def _expected(check: str) -> str:
    if check == "compiled vs eager":
        return "the compiled build is not slower than the eager one on the same stack"
    return f"{check} within the baseline's tolerance"


def _helpers(build: dict) -> str:
    """The suite's code that this build needs, copied verbatim into repro.py."""
    from ..build import sensitivity, static_cache

    parts = []
    if build["prebuilt_cache"]:
        parts += [f"MAX_PROMPT_TOKENS = {static_cache.MAX_PROMPT_TOKENS}"] + [
            inspect.getsource(getattr(static_cache, name))
            for name in ("cache_argument", "_static_cache", "build_cache", "_decoder_shaped", "PrebuiltCache")]
    if build["injected_slowdown"]:
        parts.append(inspect.getsource(sensitivity.DeviceSlowdown if build.get("injected_on") == "device"
                                       else sensitivity.Slowdown))
    return "\n\n".join(parts) or "# (none: this variant needs nothing beyond torch and transformers)"


def repro_source(setup: BuildSetup, finding: Finding, run_name: str, expected: str) -> str:
    what = {"regression": "times eager and the variant side by side in a plain loop",
            "recompile": "warms up, then counts the graphs compiled during the timed calls"}.get(
        finding.kind, "builds, warms up and calls the variant once")
    settings = {"model": setup.model, "device": setup.device, "dtype": setup.dtype,
                "max_new_tokens": setup.max_new_tokens, "warmup_calls": setup.warmup_calls, "kind": finding.kind,
                "batch_size": setup.batch_size,
                "variant_name": finding.variant, "variant": setup.variant, "reference": setup.reference,
                "expected": expected, "seen": finding.seen}
    template = resources.files("whisper_perf").joinpath("data/repro.py.in").read_text(encoding="utf-8")
    return (template.replace("__TITLE__", finding.title).replace("__RUN__", run_name).replace("__WHAT__", what)
            .replace("__DEVICE__", setup.device).replace("__HELPERS__", _helpers(setup.variant))
            .replace("__SETUP__", json.dumps(settings, indent=1, default=str)))


def environment_text() -> str:
    import transformers

    done = subprocess.run([sys.executable, "-m", "torch.utils.collect_env"], capture_output=True, text=True,
                          timeout=300)
    return (done.stdout or done.stderr) + f"\ntransformers version: {transformers.__version__}\n"


def report_text(finding: Finding, run: RunResult, folder: Path) -> str:
    sw = run.software
    return "\n".join([
        f"# {finding.title}", "",
        f"On {run.hardware.get('device_name')} (`{run.hardware_key}`), torch {sw.get('torch')}, transformers "
        f"{sw.get('transformers')}, Python {sw.get('python')}" + (f", CUDA {sw['cuda']}" if sw.get("cuda") else "")
        + ".", "",
        "## Expected", "", finding.expected + ".", "",
        "## Seen", "", "```", finding.seen, "```", "",
        "## To reproduce", "",
        "`repro.py` (torch, transformers and numpy only) builds the model and variant with the same settings "
        "and runs what failed, on the audio in `inputs.npz` beside it:", "",
        "```bash", f"cd {folder}", "python repro.py", "```", "",
        "`env.txt` is the output of `python -m torch.utils.collect_env` on the machine that saw it.", ""])


def write_bug_reports(run: RunResult, setups: dict, folder: Path, run_name: str) -> dict[str, str]:
    """"model/variant" -> folder of each finding whose variant repro.py can rebuild; an existing
    folder is never written into."""
    written, env = {}, None
    for finding in findings(run):
        setup = setups.get((finding.model, finding.variant))
        if setup is None:
            continue
        target = Path(folder) / f"{finding.model}-{finding.variant}".replace("/", "_")
        target.mkdir(parents=True, exist_ok=False)
        timed = finding.kind in ("regression", "recompile")
        audio = setup.audio[:max(MAX_TIMED_UTTERANCES, setup.batch_size) if timed else setup.batch_size]
        np.savez_compressed(target / "inputs.npz", **{f"utt_{i:03d}": a for i, a in enumerate(audio)})
        expected = _expected_speedup(run, finding)
        (target / "repro.py").write_text(repro_source(setup, finding, run_name, expected), encoding="utf-8")
        env = env or environment_text()
        (target / "env.txt").write_text(env, encoding="utf-8")
        (target / "report.md").write_text(report_text(finding, run, target), encoding="utf-8")
        written[f"{finding.model}/{finding.variant}"] = str(target)
    return written


def _expected_speedup(run: RunResult, finding: Finding) -> str:
    verdicts = run.verdicts_of(finding.model, finding.variant, "speedup")
    return verdicts[0].message if verdicts else "no speedup verdict in the run"

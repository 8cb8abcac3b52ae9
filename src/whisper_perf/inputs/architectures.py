"""Whisper models of the published architectures with seeded random weights (``--model arch:NAME``).

The published numbers this suite is about are for medium.en, medium, large-v3 and large-v3-turbo,
which no machine without the model hub can download.  What generate() costs depends on the shapes
(layers, widths, heads, vocabulary, mel bins), not on what the weights learned, so a model of the
same shape with random weights times the same work.  The shapes and token ids are data
(``data/architectures.json``, with their source).

What random weights change, and how the suite handles it:
- transcripts end at random points: such a model is timed with ``--fixed-work`` only;
- transcripts are meaningless: WER does not apply (``is_random``); token parity between eager and
  compiled builds still does;
- the tokenizer is the embedded tiny.en's (the only one available offline): for a multilingual
  vocabulary its text is odd, but its end-of-text id is set to the architecture's, so that text
  tokens are counted right (``generation.text_token_ids``).
"""

from __future__ import annotations

import contextlib
import json
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    import torch

PREFIX = "arch:"
SEED = 0
WEIGHTS = f"random (seed {SEED})"
_CONFIG_KEYS = ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "num_mel_bins",
                "max_source_positions", "max_target_positions")
_TOKEN_KEYS = ("eos_token_id", "pad_token_id", "bos_token_id", "decoder_start_token_id")


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(resources.files("whisper_perf").joinpath("data/architectures.json").read_text("utf-8"))


def names() -> list[str]:
    return list(_data()["models"])


def is_random(model_name: str) -> bool:
    """Whether the model of this name (as in test ids, baselines, results) has random weights."""
    return model_name.startswith(PREFIX)


def architecture(name: str) -> dict:
    """The shape and the vocabulary's token ids of ``name`` ("large-v3-turbo" or "arch:large-v3-turbo")."""
    bare = name.removeprefix(PREFIX)
    models = _data()["models"]
    if bare not in models:
        raise UsageError(f"--model {PREFIX}{bare}: unknown architecture. Known: "
                         f"{', '.join(PREFIX + n for n in models)}")
    shape = models[bare]
    return {**shape, **_data()["vocabularies"][shape["vocabulary"]], "name": bare}


def check_options(models: list[str], fixed_work: bool) -> None:
    """At configure time, before any model loads: every arch: name is known, and --fixed-work is set."""
    wanted = [m for m in models if is_random(m)]
    for spec in wanted:
        architecture(spec)
    if wanted and not fixed_work:
        raise UsageError(f"--model {wanted[0]} has random weights: its transcripts end at random points, so "
                         "the work timed would change from call to call. Add --fixed-work (every call "
                         "generates the whole --max-new-tokens budget).")


def whisper_config(name: str):
    from transformers import WhisperConfig

    arch = architecture(name)
    return WhisperConfig(
        **{key: arch[key] for key in _CONFIG_KEYS + _TOKEN_KEYS}, vocab_size=arch["vocab_size"],
        tie_word_embeddings=True, attn_implementation="sdpa",
        # Generation settings belong in the generation config only (see convert.build_checkpoint).
        begin_suppress_tokens=None)


def generation_config(name: str):
    """The checkpoint's generation config, with one change for random weights: every special token
    but end-of-text is suppressed (a trained model told <|notimestamps|> emits none), so that every
    generated token is a text token and fixed work generates exactly the budget of them."""
    from transformers import GenerationConfig

    arch = architecture(name)
    eot, vocab = arch["eos_token_id"], arch["vocab_size"]
    suppress = sorted(set(arch["suppress_tokens"]) | set(range(eot + 1, vocab)))
    multilingual = {key: arch[key] for key in ("lang_to_id", "task_to_id") if key in arch}
    return GenerationConfig(
        **{key: arch[key] for key in _TOKEN_KEYS}, suppress_tokens=suppress,
        begin_suppress_tokens=arch["begin_suppress_tokens"], no_timestamps_token_id=arch["no_timestamps_token_id"],
        prev_sot_token_id=arch["prev_sot_token_id"], max_initial_timestamp_index=50, return_timestamps=False,
        is_multilingual=arch["is_multilingual"], max_length=arch["max_target_positions"], **multilingual)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_model(name: str, device: str = "cpu", dtype: torch.dtype | None = None, seed: int = SEED):
    """The model in eval mode, its weights drawn from ``seed`` directly on ``device`` in ``dtype``
    (default float32): no full-precision copy on the CPU first (a large-v3 in fp32 is 6 GB).
    ``device="meta"`` builds the shapes alone (parameter counts, at no cost).  torch is imported
    here, not with the module: reading a results file (is_random) needs none."""
    import torch
    from transformers import WhisperForConditionalGeneration

    dtype = torch.float32 if dtype is None else dtype
    config = whisper_config(name)
    torch.manual_seed(seed)  # seeds the CPU and every CUDA generator
    with torch.device(device), _default_dtype(dtype):
        model = WhisperForConditionalGeneration(config)
    model.generation_config = generation_config(name)
    return model.eval()


def parameter_count(name: str) -> int:
    """Parameters of the architecture (the output projection is tied to the token embedding)."""
    model = build_model(name, device="meta")
    return sum(p.numel() for p in model.parameters())


def build_processor(name: str):
    """A WhisperProcessor for the architecture: its number of mel bins, the embedded tiny.en's
    tokenizer with the architecture's end-of-text id."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    from .convert import converted_embedded_model

    arch = architecture(name)
    processor = WhisperProcessor.from_pretrained(converted_embedded_model(), local_files_only=True)
    processor.feature_extractor = WhisperFeatureExtractor(feature_size=arch["num_mel_bins"])
    tokenizer = processor.tokenizer
    eot = arch["eos_token_id"]
    if tokenizer.eos_token_id != eot:
        # Multilingual vocabularies end text one id later (50257; tiny.en's <|startoftranscript|>):
        # text_token_ids keeps the ids below it, which all exist in this tokenizer.
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eot)
    return processor

"""A static encoder-decoder cache that the suite builds once per variant and hands to ``generate()``.

Why: the published recipe sets ``generation_config.cache_implementation = "static"`` and lets
``generate()`` make the cache.  Up to transformers 5.0 ``generate()`` kept that cache on the
model and reset it between calls; later 5.x releases build a new one per call, and since 4.56
its tensors are allocated lazily on the first update, which then happens *inside* the compiled
prompt step: the tensors miss ``mark_static_address`` and, under ``mode="reduce-overhead"``,
CUDA graphs see new, mutated inputs every call (transformers' own tests hit this for
encoder-decoder models; its maintainers advise passing a cache built by the caller when
compiling by hand).  The variants with ``prebuilt_cache`` therefore own one cache:

* built once, outside any compiled region, on the model's device and dtype, through the
  constructor of the installed transformers (4.46-4.55 allocate in the constructor; 4.56 and
  later allocate in ``early_initialization``); either way the tensors are marked static;
* reset before every ``generate()`` (in place: the addresses CUDA graphs recorded stay valid);
* passed to ``generate()`` under the name the installed release takes (``past_key_values``,
  renamed ``cache`` in later 5.x releases, which still accept the old name with a warning).

The self-attention part holds the decoder prompt plus the token budget; the cross-attention
part the encoder's frames (1500 for every Whisper: 30 s of audio).
"""

from __future__ import annotations

import copy
import functools
import inspect

import torch

# Whisper's decoder prompt: start of transcript, language, task, no-timestamps (English-only
# models skip language and task).
MAX_PROMPT_TOKENS = 4


def cache_argument(model) -> str:
    """The keyword ``generate()`` takes a cache under on the installed transformers."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _static_cache(config, max_cache_len: int, dtype: torch.dtype, device: torch.device, batch_size: int = 1):
    from transformers import StaticCache

    parameters = inspect.signature(StaticCache.__init__).parameters
    if "max_batch_size" in parameters or "batch_size" in parameters:  # 4.46-4.55: allocated here
        batch = "batch_size" if "batch_size" in parameters else "max_batch_size"
        return StaticCache(config=config, **{batch: batch_size}, max_cache_len=max_cache_len, device=device, dtype=dtype)
    cache = StaticCache(config=config, max_cache_len=max_cache_len)
    heads = config.decoder_attention_heads
    cache.early_initialization(batch_size=batch_size, num_heads=heads, head_dim=config.d_model // heads, dtype=dtype,
                               device=device)
    return cache


def build_cache(model, max_new_tokens: int, batch_size: int = 1):
    """An ``EncoderDecoderCache`` of two static caches for ``batch_size`` utterances per call,
    allocated now on the model's device and dtype."""
    from transformers import EncoderDecoderCache

    config = _decoder_shaped(model.config)
    own = min(config.max_target_positions, max_new_tokens + MAX_PROMPT_TOKENS)
    return EncoderDecoderCache(_static_cache(config, own, model.dtype, model.device, batch_size),
                               _static_cache(config, config.max_source_positions, model.dtype, model.device, batch_size))


def _decoder_shaped(config):
    """A copy of ``config`` whose layer count is the decoder's: ``StaticCache`` makes one layer per
    ``num_hidden_layers``, which Whisper's config maps to its *encoder* layers (32 against 4 for
    large-v3-turbo: eight times the cache, all of it zeroed in every call)."""
    shaped = copy.deepcopy(config)
    shaped.num_hidden_layers = config.decoder_layers  # through attribute_map where the config has one
    return shaped


class PrebuiltCache:
    """Owns one cache and wraps ``generate`` so that every call starts from it, reset."""

    def __init__(self, model, max_new_tokens: int, cache=None, batch_size: int = 1):
        self.cache = cache if cache is not None else build_cache(model, max_new_tokens, batch_size)
        self.argument = cache_argument(model)

    def wrap(self, generate):
        @functools.wraps(generate)
        def generate_from_prebuilt_cache(*args, **kwargs):
            self.cache.reset()
            return generate(*args, **{self.argument: self.cache}, **kwargs)

        return generate_from_prebuilt_cache

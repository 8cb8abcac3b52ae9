"""Generation settings that mean the same thing on every transformers version.

Whisper's ``generate()`` changed across releases; what is built here per version:
- token budget: transformers 5.x fills a default ``max_length`` into the config that Whisper
  passes on, so ``max_new_tokens`` as an argument warns "Both max_new_tokens and max_length
  seem to have been set".  On 5.x Whisper counts ``max_length`` in new tokens (it adds the
  prompt length itself), so the budget goes there, and fixed work in ``min_new_tokens`` of the
  config (``min_length`` would count the prompt); on 4.x both go in the arguments
  ``max_new_tokens``/``min_new_tokens`` as documented.
- prompt: the converted checkpoints carry no ``forced_decoder_ids`` (they raise on 4.51/4.52);
  multilingual models get ``language="en", task="transcribe"`` explicitly.
- output: 4.x returns the prompt tokens in ``generate()``'s output, 5.x does not; compare
  ``text_token_ids`` (special tokens removed), never raw sequences.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass

from packaging.version import Version


@functools.cache
def budget_in_config() -> bool:
    """Whether the budget goes in the config (transformers 5.x); transformers is imported here,
    not with the module, so that the run's options are checked before it loads."""
    import transformers

    return Version(transformers.__version__).major >= 5


class _MinNewTokensNotice(logging.Filter):
    """Drops one warning: on 5.x Whisper's generate() fills the global default ``min_length=0``
    into its config, so every fixed-work call (every warm-up, every ``--fixed-work`` call) would
    warn that "Both `min_new_tokens` and `min_length` seem to have been set", though
    ``min_new_tokens`` is what it then applies, as intended."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`min_new_tokens` will take precedence" not in record.getMessage()


class _BatchedMaskNotice(logging.Filter):
    """Drops one warning of a batched call (--batch): that no attention mask was given.  Nothing
    in a short-form Whisper batch is padded: the feature extractor pads every utterance to 30 s of
    frames, which the encoder attends to in full at batch 1 too, and every decoder prompt is the
    same.  Measured on the committed set: eager at batch 4 and 8 gives the token ids of batch 1."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "attention mask is not set with a batched input" not in record.getMessage()


# (the 5.x notice never appears on 4.x: its filter is harmless there)
logging.getLogger("transformers.generation.utils").addFilter(_BatchedMaskNotice())
logging.getLogger("transformers.generation.utils").addFilter(_MinNewTokensNotice())


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    fixed_work: bool = False  # min_new_tokens == max_new_tokens: same work whatever is transcribed
    language: str = "en"
    batch_size: int = 1  # utterances per short-form generate() call (--batch); pipelines take one clip


    def as_dict(self) -> dict:
        return asdict(self)


def configure(model, settings: GenerationSettings) -> dict:
    """Write ``settings`` into ``model.generation_config``; return the kwargs for ``generate()``.

    The ASR pipeline reaches the same settings: on 4.x they are per-call kwargs; 5.x releases up
    to at least 5.17 pass the pipeline's own copy of the config, made when it was built, but
    ``generate()`` fills what that copy leaves unset from the model's config (tested: every chunk
    of a full-budget warm-up generates the whole budget)."""
    _write(model.generation_config, settings)
    kwargs: dict = {}
    if getattr(model.generation_config, "is_multilingual", False):
        kwargs.update(language=settings.language, task="transcribe")
    if not budget_in_config():
        kwargs["max_new_tokens"] = settings.max_new_tokens
        if settings.fixed_work:
            kwargs["min_new_tokens"] = settings.max_new_tokens
    return kwargs


def _write(config, settings: GenerationSettings) -> None:
    config.forced_decoder_ids = None
    if hasattr(config, "disable_compile"):
        # The suite compiles forward itself (the published recipe).  transformers >= 4.50 would
        # otherwise also torch.compile __call__ around it on a GPU whenever the cache is static,
        # and what is timed would no longer be the recipe.
        config.disable_compile = True
    if budget_in_config():
        config.max_new_tokens = None
        config.max_length = settings.max_new_tokens
        # Whisper adds its decoder prompt to max_length but not to min_length, so a min_length of
        # the budget would guarantee only budget - prompt new tokens; min_new_tokens counts new
        # tokens only (generate() adds the prompt length itself).
        config.min_length = None
        config.min_new_tokens = settings.max_new_tokens if settings.fixed_work else None


def text_token_ids(sequence, eot_id: int) -> list[int]:
    """Ids of the text tokens: every Whisper special token (prompt, timestamps) sits at or after EOT."""
    return [int(i) for i in sequence if int(i) < eot_id]

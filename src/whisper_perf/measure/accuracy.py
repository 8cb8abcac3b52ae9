"""Word error rate the way Whisper results are reported: jiwer on text normalized by
Whisper's English normalizer (both references and hypotheses)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files

import jiwer


@lru_cache(maxsize=1)
def normalizer():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    # OpenAI's British->American spelling table (MIT), shipped as the hub's normalizer.json is.
    mapping = json.loads(files("whisper_perf").joinpath("data/english_spelling.json").read_text(encoding="utf-8"))
    return EnglishTextNormalizer(mapping)


def normalize(text: str) -> str:
    return normalizer()(text)


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER in [0, inf) over normalized texts; utterances that normalize to nothing are kept
    as a single placeholder word so that they still count."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [normalize(t) or "<empty>" for t in references]
    hyps = [normalize(t) or "<empty>" for t in hypotheses]
    return jiwer.wer(refs, hyps)

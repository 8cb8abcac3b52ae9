"""An independent decoder for checking the conversion: OpenAI's own ``whisper`` package, loaded
straight from the CTranslate2 tensors with its own names (not through our transformers mapping).

``whisper.decode()`` on the log-mel of audio padded to 30 s runs the same greedy search as
transformers' ``generate()``; its ``transcribe()`` pads the mel differently, so it is not used.
"""

from __future__ import annotations

import numpy as np
import torch

from whisper_perf.inputs.convert import _count_layers, embedded_source, read_ct2


def openai_state_dict(v: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}

    def t(name):
        return torch.from_numpy(np.array(v[name], dtype=np.float32))

    def linear(dst, src, bias=True):
        sd[f"{dst}.weight"] = t(f"{src}/weight")
        if bias:
            sd[f"{dst}.bias"] = t(f"{src}/bias")

    def ln(dst, src):
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = t(f"{src}/gamma"), t(f"{src}/beta")

    def attention(dst, src_q_or_qkv, src_out, fused_kv=None):
        if fused_kv is None:  # self-attention: q, k, v fused
            w, b = t(f"{src_q_or_qkv}/weight").chunk(3), t(f"{src_q_or_qkv}/bias").chunk(3)
        else:  # cross-attention: q apart, k and v fused
            kv_w, kv_b = t(f"{fused_kv}/weight").chunk(2), t(f"{fused_kv}/bias").chunk(2)
            w = (t(f"{src_q_or_qkv}/weight"), *kv_w)
            b = (t(f"{src_q_or_qkv}/bias"), *kv_b)
        for name, wi, bi in zip(("query", "key", "value"), w, b):
            sd[f"{dst}.{name}.weight"] = wi
            if name != "key":
                sd[f"{dst}.{name}.bias"] = bi
        linear(f"{dst}.out", src_out)

    for side in ("encoder", "decoder"):
        for i in range(_count_layers(v, side)):
            d, s = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            ln(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
            attention(f"{d}.attn", f"{s}/self_attention/linear_0", f"{s}/self_attention/linear_1")
            if side == "decoder":
                ln(f"{d}.cross_attn_ln", f"{s}/attention/layer_norm")
                attention(f"{d}.cross_attn", f"{s}/attention/linear_0", f"{s}/attention/linear_2",
                          fused_kv=f"{s}/attention/linear_1")
            ln(f"{d}.mlp_ln", f"{s}/ffn/layer_norm")
            linear(f"{d}.mlp.0", f"{s}/ffn/linear_0")
            linear(f"{d}.mlp.2", f"{s}/ffn/linear_1")
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    sd["encoder.positional_embedding"] = t("encoder/position_encodings/encodings")
    ln("encoder.ln_post", "encoder/layer_norm")
    sd["decoder.token_embedding.weight"] = t("decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = t("decoder/position_encodings/encodings")
    ln("decoder.ln", "decoder/layer_norm")
    return sd


def load_openai_tiny_en():
    import whisper
    from whisper.model import ModelDimensions, Whisper

    v = read_ct2(embedded_source() / "model.bin")
    dims = ModelDimensions(
        n_mels=v["encoder/conv1/weight"].shape[1], n_audio_ctx=v["encoder/position_encodings/encodings"].shape[0],
        n_audio_state=v["encoder/conv1/weight"].shape[0], n_audio_head=int(v["encoder/num_heads"]),
        n_audio_layer=_count_layers(v, "encoder"), n_vocab=v["decoder/embeddings/weight"].shape[0],
        n_text_ctx=v["decoder/position_encodings/encodings"].shape[0],
        n_text_state=v["decoder/embeddings/weight"].shape[1], n_text_head=int(v["decoder/num_heads"]),
        n_text_layer=_count_layers(v, "decoder"))
    model = Whisper(dims)
    model.load_state_dict(openai_state_dict(v), strict=True)
    return whisper, model.eval()


def openai_greedy_text(whisper, model, audio: np.ndarray) -> str:
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)), model.dims.n_mels)
    options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False, sample_len=128)
    return whisper.decode(model, mel, options).text

"""A CTranslate2 Whisper model (faster-whisper's ``model.bin``) read back as tensors and
written as an openai-whisper checkpoint, so both engines run the same weights
(``weights.fetch_whisper_base``). CTranslate2 has no reader for its own format in Python:
the layout is read here (version 6 files, as Systran's conversions are)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


class WeightsError(RuntimeError):
    """Weights that cannot be had or cannot be trusted; the message is one clear sentence."""


BASE_DIMS = {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 512, "n_audio_head": 8,
             "n_audio_layer": 6, "n_vocab": 51865, "n_text_ctx": 448, "n_text_state": 512,
             "n_text_head": 8, "n_text_layer": 6}
# CTranslate2's DataType enum order (include/ctranslate2/types.h).
_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16)


def read_ct2_model(path: Path) -> dict[str, np.ndarray]:
    """The named tensors of a CTranslate2 ``model.bin`` (binary version 6: name, rank, dims,
    dtype, byte count and bytes per variable, then aliases), aliases resolved."""
    buf = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = take("H")
        text = buf[pos : pos + n - 1].decode("utf-8")
        pos += n
        return text

    try:
        version = take("I")
        if version != 6:
            raise WeightsError(f"{path}: CTranslate2 binary version {version}, expected 6")
        string()  # spec name
        take("I")  # spec revision
        tensors: dict[str, np.ndarray] = {}
        for _ in range(take("I")):
            name = string()
            dims = [take("I") for _ in range(take("B"))]
            dtype = np.dtype(_CT2_DTYPES[take("B")])
            nbytes = take("I")
            tensors[name] = np.frombuffer(buf, dtype, nbytes // dtype.itemsize, pos
                                          ).reshape(dims)
            pos += nbytes
        for _ in range(take("I")):
            alias, target = string(), string()
            tensors[alias] = tensors[target]
    except (struct.error, IndexError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable CTranslate2 model ({exc})") from None
    return tensors


def ct2_to_openai_state_dict(t: dict[str, np.ndarray], dims: dict[str, int]) -> dict:
    """Map CTranslate2's Whisper names onto ``whisper.model.Whisper``'s state dict.

    CTranslate2 fuses self-attention q/k/v into one ``linear_0`` (k has no bias in Whisper:
    its part of the fused bias is zero) and cross-attention k/v into ``linear_1``."""
    import torch

    n = dims["n_audio_state"]
    sd: dict[str, torch.Tensor] = {}

    def put(name: str, array: np.ndarray) -> None:
        sd[name] = torch.from_numpy(np.array(array))

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", t[f"{src}/gamma"])
        put(f"{dst}.bias", t[f"{src}/beta"])

    def linear(dst: str, src: str) -> None:
        put(f"{dst}.weight", t[f"{src}/weight"])
        put(f"{dst}.bias", t[f"{src}/bias"])

    def fused(dst: str, src: str, parts: tuple[str, ...]) -> None:
        w, b = t[f"{src}/weight"], t[f"{src}/bias"]
        for i, part in enumerate(parts):
            put(f"{dst}.{part}.weight", w[i * n : (i + 1) * n])
            if part != "key":
                put(f"{dst}.{part}.bias", b[i * n : (i + 1) * n])

    def block(dst: str, src: str) -> None:  # what encoder and decoder blocks share
        fused(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    for conv in ("conv1", "conv2"):
        linear(f"encoder.{conv}", f"encoder/{conv}")
    put("encoder.positional_embedding", t["encoder/position_encodings/encodings"])
    for i in range(dims["n_audio_layer"]):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}")
    norm("encoder.ln_post", "encoder/layer_norm")
    put("decoder.token_embedding.weight", t["decoder/embeddings/weight"])
    put("decoder.positional_embedding", t["decoder/position_encodings/encodings"])
    for i in range(dims["n_text_layer"]):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        block(dst, src)
        linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
        fused(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
        linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
    norm("decoder.ln", "decoder/layer_norm")
    return sd


def write_openai_checkpoint(model_bin: Path, out: Path, dims: dict[str, int] = BASE_DIMS
                            ) -> Path:
    """An openai-whisper checkpoint (``{"dims", "model_state_dict"}``) from the same tensors;
    loading it into ``Whisper(dims)`` strictly proves every parameter was mapped."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    state = ct2_to_openai_state_dict(read_ct2_model(model_bin), dims)
    Whisper(ModelDimensions(**dims)).load_state_dict(state, strict=True)
    torch.save({"dims": dict(dims), "model_state_dict": state}, out)
    return out

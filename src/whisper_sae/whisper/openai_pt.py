"""Map an openai-whisper checkpoint (``{"dims": ..., "model_state_dict": ...}``) onto ``transformers`` names."""

from __future__ import annotations

import re

import torch

# openai-whisper module names → transformers module names, applied to the part after ``blocks.N.``.
_BLOCK_NAMES = {
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "cross_attn.query": "encoder_attn.q_proj",
    "cross_attn.key": "encoder_attn.k_proj",
    "cross_attn.value": "encoder_attn.v_proj",
    "cross_attn.out": "encoder_attn.out_proj",
    "cross_attn_ln": "encoder_attn_layer_norm",
    "mlp.0": "fc1",
    "mlp.2": "fc2",
    "mlp_ln": "final_layer_norm",
}

_TOP_NAMES = {
    "encoder.conv1.weight": "model.encoder.conv1.weight",
    "encoder.conv1.bias": "model.encoder.conv1.bias",
    "encoder.conv2.weight": "model.encoder.conv2.weight",
    "encoder.conv2.bias": "model.encoder.conv2.bias",
    "encoder.positional_embedding": "model.encoder.embed_positions.weight",
    "encoder.ln_post.weight": "model.encoder.layer_norm.weight",
    "encoder.ln_post.bias": "model.encoder.layer_norm.bias",
    "decoder.token_embedding.weight": "model.decoder.embed_tokens.weight",
    "decoder.positional_embedding": "model.decoder.embed_positions.weight",
    "decoder.ln.weight": "model.decoder.layer_norm.weight",
    "decoder.ln.bias": "model.decoder.layer_norm.bias",
}

_BLOCK = re.compile(r"^(encoder|decoder)\.blocks\.(\d+)\.(.+)\.(weight|bias)$")

# Buffers some checkpoints carry that have no counterpart in transformers' parameters.
_IGNORED = {"alignment_heads", "decoder.mask"}

DIMS_KEYS = (
    "n_mels",
    "n_vocab",
    "n_audio_ctx",
    "n_audio_state",
    "n_audio_head",
    "n_audio_layer",
    "n_text_ctx",
    "n_text_state",
    "n_text_head",
    "n_text_layer",
)


def openai_name_to_transformers(name: str) -> str:
    """The ``WhisperForConditionalGeneration`` parameter name of one openai-whisper state-dict key."""
    if name in _TOP_NAMES:
        return _TOP_NAMES[name]
    match = _BLOCK.match(name)
    if match and match.group(3) in _BLOCK_NAMES:
        side, layer, module, kind = match.groups()
        return f"model.{side}.layers.{layer}.{_BLOCK_NAMES[module]}.{kind}"
    raise ValueError(
        f"{name!r} is not an openai-whisper parameter name; expected names like 'encoder.conv1.weight', "
        "'encoder.blocks.0.attn.query.weight', 'decoder.token_embedding.weight' or 'decoder.ln.bias'."
    )


def to_transformers_state_dict(openai_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename every tensor (as float32) and add the tied output projection."""
    sd = {openai_name_to_transformers(k): v.float() for k, v in openai_sd.items() if k not in _IGNORED}
    sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
    return sd


def config_kwargs(dims: dict[str, int]) -> dict[str, int]:
    """``WhisperConfig`` sizes from openai-whisper's ``ModelDimensions``."""
    missing = [k for k in DIMS_KEYS if k not in dims]
    if missing:
        raise ValueError(f"The checkpoint's 'dims' lacks {missing}; openai-whisper checkpoints have {list(DIMS_KEYS)}.")
    return {
        "vocab_size": dims["n_vocab"],
        "num_mel_bins": dims["n_mels"],
        "d_model": dims["n_audio_state"],
        "encoder_layers": dims["n_audio_layer"],
        "decoder_layers": dims["n_text_layer"],
        "encoder_attention_heads": dims["n_audio_head"],
        "decoder_attention_heads": dims["n_text_head"],
        "encoder_ffn_dim": 4 * dims["n_audio_state"],
        "decoder_ffn_dim": 4 * dims["n_text_state"],
        "max_source_positions": dims["n_audio_ctx"],
        "max_target_positions": dims["n_text_ctx"],
    }

"""The shapes of the released Whisper models (OpenAI's model card), to size runs before any weights
are fetched: a ``WhisperConfig`` per name, and the README's table of widths, depths and disk needs."""

from __future__ import annotations

from whisper_sae.audio.constants import FRAMES_PER_SECOND, FRAMES_PER_WINDOW

from .disk import gb_per_million_rows

# name: (d_model, encoder layers, decoder layers, attention heads, mel bins); the FFN is 4 x d_model.
SIZES = {
    "tiny": (384, 4, 4, 6, 80),
    "base": (512, 6, 6, 8, 80),
    "small": (768, 12, 12, 12, 80),
    "medium": (1024, 24, 24, 16, 80),
    "large-v2": (1280, 32, 32, 20, 80),
    "large-v3": (1280, 32, 32, 20, 128),
    "large-v3-turbo": (1280, 32, 4, 20, 128),
}
ENGLISH_ONLY = ("tiny", "base", "small", "medium")  # the sizes with a ``.en`` variant


def model_names() -> list[str]:
    return [n for base in SIZES for n in ([base, base + ".en"] if base in ENGLISH_ONLY else [base])]


def whisper_config(name: str):
    """A ``WhisperConfig`` with the real sizes of ``name`` (e.g. ``small.en``, ``large-v3``); no weights."""
    from transformers import WhisperConfig

    base = name.removesuffix(".en")
    english = name.endswith(".en")
    if base not in SIZES or (english and base not in ENGLISH_ONLY):
        raise ValueError(f"Whisper model {name!r} is not known; valid names are {', '.join(model_names())}")
    d, enc, dec, heads, mels = SIZES[base]
    # Vocabulary: English-only 51864; multilingual 51865, and large-v3's extra language token 51866.
    vocab = 51864 if english else (51866 if mels == 128 else 51865)
    eot = 50256 if english else 50257
    return WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=mels,
        d_model=d,
        encoder_layers=enc,
        decoder_layers=dec,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d,
        decoder_ffn_dim=4 * d,
        max_source_positions=FRAMES_PER_WINDOW,
        max_target_positions=448,
        decoder_start_token_id=eot + 1,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
    )


def parameter_count(name: str) -> int:
    """Parameters of the model (output projection tied to the embedding), from a weightless build."""
    import torch
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):  # shapes only: no memory, no random initialisation
        model = WhisperForConditionalGeneration(whisper_config(name))
    return sum(p.numel() for p in model.parameters())


def models_table(dtype: str = "float16") -> str:
    """Markdown: d_model, layers, and disk per million rows (and per 1000 h of audio) of one hook."""
    lines = [
        "| model | d_model | layers (enc / dec) | params | GB per 1M activations per hook (fp16) "
        "| GB per 1000 h, one encoder hook |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in model_names():
        d, enc, dec, _, _ = SIZES[name.removesuffix(".en")]
        per_m = gb_per_million_rows(d, dtype)
        per_kh = per_m * 1000 * 3600 * FRAMES_PER_SECOND / 1e6
        lines.append(
            f"| {name} | {d} | {enc} / {dec} | {parameter_count(name) / 1e6:.0f} M | {per_m:.3f} | {per_kh:.0f} |"
        )
    return "\n".join(lines)

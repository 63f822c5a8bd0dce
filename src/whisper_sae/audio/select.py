"""Options every corpus spec takes: ``?split=SPLIT.json:SIDE`` and ``?every=N``.

``split`` keeps the utterances of the speakers on one side (``train`` or ``held_out``) of a split
written by ``whisper-sae corpus split`` — by speaker, never by utterance id, so the same split file
selects the same readers from any corpus that holds them (mini LibriSpeech and LibriSpeech share
speaker ids). ``every=N`` keeps every Nth of the remaining utterances, a subset spread over all
speakers rather than the first few (which ``--max-utterances`` gives). Both act on entries, before
any audio is decoded, and the corpus keeps a known length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

SIDES = ("train", "held_out")


def parse_split_option(value: str, spec_text: str) -> tuple[Path, str]:
    """``SPLIT.json:SIDE`` → (path, side); errors name the spec and what was wrong."""
    path, sep, side = value.rpartition(":")
    if not sep or side not in SIDES:
        raise ValueError(
            f"corpus spec {spec_text!r}: split={value!r} must be SPLIT.json:train or SPLIT.json:held_out "
            "(a file written by `whisper-sae corpus split --out SPLIT.json`)."
        )
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"corpus spec {spec_text!r}: split file {path!r} does not exist.")
    return file, side


def parse_every_option(value: str, spec_text: str) -> int:
    try:
        every = int(value)
    except ValueError:
        every = 0
    if every < 1:
        raise ValueError(f"corpus spec {spec_text!r}: every={value!r} must be a whole number ≥ 1.")
    return every


def apply_common_options(corpus, options: dict, spec_text: str):
    """Narrow ``corpus`` (a ``Corpus``) in place by the ``split``/``every`` options, if any; return it."""
    if "split" not in options and "every" not in options:
        return corpus
    from whisper_sae.audio.metadata import merge_attributes
    from whisper_sae.audio.splits import load_split

    speakers = None
    if "split" in options:
        file, side = parse_split_option(options["split"], spec_text)
        split = load_split(file)
        speakers = {str(s) for s in (split.train_speakers if side == "train" else split.held_out_speakers)}
    every = parse_every_option(options["every"], spec_text) if "every" in options else 1
    entries = corpus._entries

    def selected() -> Iterator:
        kept = 0
        for entry in entries():
            if speakers is not None:
                speaker = entry.speaker
                if speaker is None:
                    speaker = merge_attributes(corpus.tables, entry.id, None, entry.attributes).get("speaker")
                if speaker is None or str(speaker) not in speakers:
                    continue
            kept += 1
            if (kept - 1) % every == 0:
                yield entry

    corpus._entries = selected
    n = sum(1 for _ in selected())
    if speakers is not None and n == 0:
        raise ValueError(
            f"corpus spec {spec_text!r}: none of its speakers is on the {options['split']!r} side "
            f"({len(speakers)} speakers there); was the split made from this corpus?"
        )
    corpus._length = n
    return corpus

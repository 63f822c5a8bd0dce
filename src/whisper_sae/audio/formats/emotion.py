"""Emotional-speech corpora whose labels live in file and folder names: RAVDESS, TESS, SAVEE, EmoDB.

These corpora ship no table: the emotion, the speaker and what was said are spelled into each file's
name (RAVDESS ``03-01-05-01-02-01-12.wav``, SAVEE ``DC/sa03.wav``, EmoDB ``03a01Fa.wav``) or its
folder's (TESS ``OAF_angry/OAF_back_angry.wav``). Reading them here turns the names into utterance
attributes, so ``probe --attribute emotion`` and the dashboard treat emotion like gender or accent.

One vocabulary. Each corpus names its emotions its own way (SAVEE "anger", TESS "fear", RAVDESS
"fearful", EmoDB's German letters), so ``emotion`` is always one of ``EMOTIONS`` (neutral, calm,
happy, sad, angry, fearful, disgust, surprised), and ``emotion_raw`` keeps the corpus's own word.
EmoDB's boredom has no counterpart and stays ``boredom``. Probes across corpora then compare like
with like; ``emotion_raw`` is there to check the mapping.

Schemes (spec prefix ``ravdess:DIR``, ``tess:DIR``, ``savee:DIR``, ``emodb:DIR``; the folder's names
decide without a prefix, see ``detect_scheme``):

- RAVDESS ``MM-VV-EE-II-SS-RR-AA``: modality (01-03), vocal channel (01 speech, 02 song), emotion
  (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised),
  intensity (01 normal, 02 strong), statement (01 "Kids are talking by the door.", 02 "Dogs are
  sitting by the door.", the transcript), repetition, actor (odd male, even female). Speaker
  ``Actor_AA``; attributes emotion, emotion_raw, intensity, statement, repetition, actor, gender,
  vocal_channel, language.
- TESS ``OAF_angry/OAF_back_angry.wav``: speaker OAF (older, 64) or YAF (younger, 26), both women;
  emotion from the folder's last part (else the file's), ``pleasant_surprise``/``ps`` → surprised;
  transcript "Say the word back."; attributes emotion, emotion_raw, word, gender, age, language.
- SAVEE ``DC/a01.wav`` (or the flat ``DC_a01.wav``): speaker DC, JE, JK or KL, all men; prefix
  a anger, d disgust, f fear, h happiness, n neutral, sa sadness, su surprise, then the sentence's
  number within that emotion (``sentence_index``; the texts differ per emotion and ship with no
  copy, so no transcript).
- EmoDB ``03a01Fa.wav``: speaker (2 digits), text code (a01-a07, b01-b10; the German sentence is the
  transcript), emotion letter (W anger, L boredom, E disgust, A fear, F happiness, T sadness,
  N neutral), version letter; speakers' gender and age from EmoDB's documentation; language de.
  Files whose names do not follow the scheme take their labels from an ``audio_labels.csv``
  (Filename, Speaker Info "male, 31 years old", Emotion) in the folder or its parent, or the table
  given by ``?labels=PATH``. Where both exist the name wins, with one warning counting rows that
  disagree (the copy in REAL-SPEECH.md E4 swaps fear, disgust and happiness in its CSV).

A file whose name breaks its scheme (six fields, an emotion code the corpus does not have) is kept
as an entry whose audio load fails, so every pass skips it with a warning that names the file and
the rule, and counts it in ``Corpus.skipped`` like an undecodable file.

Editing labels: ``whisper-sae corpus labels DIR --scheme S --out metadata.tsv`` writes the parsed
labels as a table (utterance_id, path, speaker, text, then the attributes); after editing it,
``csv:DIR:metadata.tsv`` reads the folder with that table (transcripts included). A folder holding a
``metadata.tsv``/``metadata.csv`` is never auto-detected as a naming scheme, so a table written
into it wins over the names.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from whisper_sae.audio.io import AUDIO_EXTENSIONS
from whisper_sae.audio.utterance import AudioError

log = logging.getLogger(__name__)

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
# A corpus's own emotion word → the shared vocabulary.
NORMALISED = {
    "neutral": "neutral",
    "calm": "calm",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "angry": "angry",
    "anger": "angry",
    "fear": "fearful",
    "fearful": "fearful",
    "anxiety": "fearful",
    "anxiety/fear": "fearful",
    "disgust": "disgust",
    "surprise": "surprised",
    "surprised": "surprised",
    "pleasant_surprise": "surprised",
    "pleasant_surprised": "surprised",
    "ps": "surprised",
    "boredom": "boredom",
}


class BadName(AudioError):
    """A file whose name does not follow its corpus's naming scheme; the message names the file and the rule."""


@dataclass
class Labels:
    """What a file's name says: speaker, transcript and attributes."""

    speaker: str | None
    text: str | None
    attributes: dict = field(default_factory=dict)


def _code(path: Path, scheme: str, what: str, value, allowed: dict) -> str:
    if value not in allowed:
        listed = ", ".join(f"{k:02d} {v}" if isinstance(k, int) else f"{k} {v}" for k, v in allowed.items())
        shown = f"{value:02d}" if isinstance(value, int) else repr(value)
        raise BadName(f"{path}: {scheme} {what} {shown} is not one of {listed}; rename or remove the file.")
    return allowed[value]


# ------------------------------------------------------------------------------------------------
# RAVDESS

RAVDESS_EMOTIONS = dict(enumerate(EMOTIONS, 1))
RAVDESS_STATEMENTS = {1: "Kids are talking by the door.", 2: "Dogs are sitting by the door."}
_RAVDESS_LOOK = re.compile(r"^\d\d(-\d\d){6}$")


def ravdess(path: Path) -> Labels:
    fields = path.stem.split("-")
    if len(fields) != 7 or not all(re.fullmatch(r"\d\d", f) for f in fields):
        raise BadName(
            f"{path}: a RAVDESS name is 7 two-digit fields MODALITY-CHANNEL-EMOTION-INTENSITY-STATEMENT-"
            f"REPETITION-ACTOR (e.g. 03-01-05-01-02-01-12.wav), not {path.stem!r} ({len(fields)} fields); "
            "rename or remove the file."
        )
    modality, channel, emotion, intensity, statement, repetition, actor = map(int, fields)
    _code(path, "RAVDESS", "modality (1st field)", modality, {1: "audio-video", 2: "video-only", 3: "audio-only"})
    vocal = _code(path, "RAVDESS", "vocal channel (2nd field)", channel, {1: "speech", 2: "song"})
    label = _code(path, "RAVDESS", "emotion (3rd field)", emotion, RAVDESS_EMOTIONS)
    strength = _code(path, "RAVDESS", "intensity (4th field)", intensity, {1: "normal", 2: "strong"})
    text = _code(path, "RAVDESS", "statement (5th field)", statement, RAVDESS_STATEMENTS)
    _code(path, "RAVDESS", "repetition (6th field)", repetition, {1: "first", 2: "second"})
    if actor < 1:
        raise BadName(
            f"{path}: RAVDESS actor (7th field) 00 is not an actor number (01-24); rename or remove the file."
        )
    return Labels(
        f"Actor_{actor:02d}",
        text,
        {
            "emotion": label,
            "emotion_raw": label,
            "intensity": strength,
            "statement": statement,
            "repetition": repetition,
            "actor": actor,
            "gender": "male" if actor % 2 else "female",
            "vocal_channel": vocal,
            "language": "en",
        },
    )


# ------------------------------------------------------------------------------------------------
# TESS

TESS_SPEAKERS = {"OAF": 64, "YAF": 26}
TESS_EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "pleasant_surprise", "sad")
_TESS_FOLDER = re.compile(r"^(OAF|YAF)_(.+)$", re.I)
_TESS_FILE = re.compile(r"^([A-Za-z]+)_([^_]+)_(.+)$")


def tess(path: Path) -> Labels:
    folder = _TESS_FOLDER.match(path.parent.name)
    name = _TESS_FILE.match(path.stem)
    if name is None:
        raise BadName(
            f"{path}: a TESS name is SPEAKER_WORD_EMOTION (e.g. OAF_angry/OAF_back_angry.wav), not "
            f"{path.stem!r}; rename or remove the file."
        )
    speaker = (folder.group(1) if folder else name.group(1)).upper()
    if speaker not in TESS_SPEAKERS:
        raise BadName(
            f"{path}: TESS speaker {speaker!r} is not OAF or YAF (and the folder {path.parent.name!r} "
            "names neither); rename or remove the file."
        )
    raw = (folder.group(2) if folder else name.group(3)).lower()
    raw = "pleasant_surprise" if raw in ("ps", "pleasant_surprised") else raw
    if raw not in TESS_EMOTIONS:
        raise BadName(
            f"{path}: TESS emotion {raw!r} is not one of {', '.join(TESS_EMOTIONS)}; rename or remove the file."
        )
    word = name.group(2).lower()
    return Labels(
        speaker,
        f"Say the word {word}.",
        {
            "emotion": NORMALISED[raw],
            "emotion_raw": raw,
            "word": word,
            "gender": "female",
            "age": TESS_SPEAKERS[speaker],
            "language": "en",
        },
    )


# ------------------------------------------------------------------------------------------------
# SAVEE

SAVEE_EMOTIONS = {
    "a": "anger",
    "d": "disgust",
    "f": "fear",
    "h": "happiness",
    "n": "neutral",
    "sa": "sadness",
    "su": "surprise",
}
_SAVEE_FILE = re.compile(r"^(?:([A-Z]{2})_)?([a-z]+)(\d{2})$")
_SAVEE_LOOK = re.compile(r"^(?:[A-Z]{2}_)?(a|d|f|h|n|sa|su)\d\d$")


def savee(path: Path) -> Labels:
    m = _SAVEE_FILE.match(path.stem)
    if m is None:
        raise BadName(
            f"{path}: a SAVEE name is an emotion prefix and two digits (e.g. DC/a01.wav or DC_sa03.wav), "
            f"not {path.stem!r}; rename or remove the file."
        )
    speaker = m.group(1) or (path.parent.name if re.fullmatch(r"[A-Z]{2}", path.parent.name) else None)
    if speaker is None:
        raise BadName(
            f"{path}: a SAVEE file sits in its speaker's folder (DC, JE, JK, KL) or starts with it "
            "(DC_a01.wav); move or rename the file."
        )
    raw = _code(path, "SAVEE", "emotion prefix", m.group(2), SAVEE_EMOTIONS)
    return Labels(
        speaker,
        None,
        {
            "emotion": NORMALISED[raw],
            "emotion_raw": raw,
            "sentence_index": int(m.group(3)),
            "gender": "male",
            "language": "en",
        },
    )


# ------------------------------------------------------------------------------------------------
# EmoDB (Berlin Database of Emotional Speech)

EMODB_EMOTIONS = {
    "W": "anger",
    "L": "boredom",
    "E": "disgust",
    "A": "fear",
    "F": "happiness",
    "T": "sadness",
    "N": "neutral",
}
EMODB_SPEAKERS = {
    "03": ("male", 31),
    "08": ("female", 34),
    "09": ("female", 21),
    "10": ("male", 32),
    "11": ("male", 26),
    "12": ("male", 30),
    "13": ("female", 32),
    "14": ("female", 35),
    "15": ("male", 25),
    "16": ("female", 31),
}
EMODB_TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Blatt Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
_EMODB_FILE = re.compile(r"^(\d\d)([ab]\d\d)([A-Za-z])([a-z])$")
_EMODB_LOOK = re.compile(r"^\d\d[ab]\d\d[WLEAFTN][a-z]$")
EMODB_TABLE = "audio_labels.csv"


def _emodb_labels(speaker: str, raw: str, text_code: str | None = None, version: str | None = None) -> Labels:
    attributes = {"emotion": NORMALISED[raw], "emotion_raw": raw}
    if speaker in EMODB_SPEAKERS:
        attributes["gender"], attributes["age"] = EMODB_SPEAKERS[speaker]
    if text_code:
        attributes["text_code"] = text_code
    if version:
        attributes["version"] = version
    attributes["language"] = "de"
    return Labels(speaker, EMODB_TEXTS.get(text_code or ""), attributes)


def emodb(path: Path) -> Labels:
    m = _EMODB_FILE.match(path.stem)
    if m is None:
        raise BadName(
            f"{path}: an EmoDB name is SPEAKER(2 digits) TEXT(a01-b10) EMOTION(letter) VERSION(letter), "
            f"e.g. 03a01Fa.wav, not {path.stem!r}; rename the file or give its labels in {EMODB_TABLE}."
        )
    raw = _code(path, "EmoDB", "emotion letter (6th character)", m.group(3), EMODB_EMOTIONS)
    return _emodb_labels(m.group(1), raw, m.group(2), m.group(4))


def _emodb_table(path: Path) -> dict[str, Labels]:
    """File stem → labels from an ``audio_labels.csv`` (Filename, Speaker Info, Emotion)."""
    from whisper_sae.audio.formats.common import read_delimited

    header, records = read_delimited(path, ",")
    key = next((c for c in ("filename", "file", "file_name", "path") if c in header), None)
    emotion = next((c for c in ("emotion", "label") if c in header), None)
    if key is None or emotion is None:
        raise ValueError(
            f"EmoDB label table {path} has columns {header}; it needs a file-name column (filename) and "
            "an emotion column (emotion)."
        )
    info = next((c for c in ("speaker info", "speaker_info", "speaker") if c in header), None)
    out: dict[str, Labels] = {}
    for n, record in enumerate(records, 2):
        row = dict(zip(header, record))
        stem = Path(row.get(key, "").strip()).stem
        raw = row.get(emotion, "").strip().lower()
        if not stem:
            continue
        if raw not in NORMALISED:
            raise ValueError(
                f"EmoDB label table {path} line {n}: emotion {raw!r} is not one of "
                f"{', '.join(sorted(set(NORMALISED)))}; correct the row."
            )
        speaker = None
        said = re.search(r"\b(male|female)\b\D*(\d+)", row.get(info, "") if info else "", re.I)
        if said:
            gender, age = said.group(1).lower(), int(said.group(2))
            speaker = next((s for s, ga in EMODB_SPEAKERS.items() if ga == (gender, age)), None)
        labels = _emodb_labels(speaker or "", raw)
        if speaker is None:
            labels.speaker = None
            if said:
                labels.attributes.update(gender=said.group(1).lower(), age=int(said.group(2)))
        out[stem] = labels
    return out


# ------------------------------------------------------------------------------------------------
# Schemes, detection and the corpus


@dataclass(frozen=True)
class Scheme:
    name: str
    parse: Callable[[Path], Labels]
    looks: Callable[[Path], bool]  # cheap test used to recognise a folder
    example: str


SCHEMES = {
    "ravdess": Scheme(
        "ravdess", ravdess, lambda p: bool(_RAVDESS_LOOK.match(p.stem)), "Actor_12/03-01-05-01-02-01-12.wav"
    ),
    "tess": Scheme(
        "tess",
        tess,
        lambda p: bool(_TESS_FOLDER.match(p.parent.name) or re.match(r"^(OAF|YAF)_[^_]+_.+$", p.stem, re.I)),
        "OAF_angry/OAF_back_angry.wav",
    ),
    "savee": Scheme(
        "savee",
        savee,
        lambda p: bool(_SAVEE_LOOK.match(p.stem)) and ("_" in p.stem or bool(re.fullmatch(r"[A-Z]{2}", p.parent.name))),
        "DC/a01.wav",
    ),
    "emodb": Scheme("emodb", emodb, lambda p: bool(_EMODB_LOOK.match(p.stem)), "03a01Fa.wav"),
}


def _audio_paths(root: Path) -> Iterator[Path]:
    for p in root.rglob("*"):
        if (
            p.suffix.lower() in AUDIO_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
            and p.is_file()
        ):
            yield p


def detect_scheme(root: Path, limit: int = 400) -> str | None:
    """The naming scheme that more than half of the folder's audio files (the first ``limit``) follow, or None."""
    counts: Counter = Counter()
    n = 0
    for p in _audio_paths(root):
        n += 1
        for name, scheme in SCHEMES.items():
            counts[name] += scheme.looks(p)
        if n >= limit:
            break
    winners = [name for name, c in counts.items() if 2 * c > n]
    return winners[0] if len(winners) == 1 else None


def _label_table(root: Path, given: str | None) -> Path | None:
    if given is not None:
        path = next((p for p in (root / given, Path(given).expanduser()) if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"EmoDB label table {given!r}: no such file in {root} or the working folder.")
        return path
    return next((p for p in (root / EMODB_TABLE, root.parent / EMODB_TABLE) if p.is_file()), None)


def parse_folder(root: Path, scheme: str, labels: str | None = None) -> tuple[list[Path], list[str], list]:
    """(files, utterance ids, ``Labels`` or ``BadName`` per file) of a folder read with ``scheme``."""
    from whisper_sae.audio.corpus import _audio_files, _folder_ids

    if scheme not in SCHEMES:
        raise ValueError(f"naming scheme {scheme!r} is not one of {', '.join(SCHEMES)}.")
    if not root.is_dir():
        raise FileNotFoundError(f"{scheme} corpus {root}: no such folder; give the folder holding the audio files.")
    files = _audio_files(root)
    if not files:
        raise ValueError(f"{scheme} corpus {root} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}).")
    table_path = _label_table(root, labels) if scheme == "emodb" else None
    table = _emodb_table(table_path) if table_path else {}
    parsed, disagree = [], []
    for f in files:
        try:
            result = SCHEMES[scheme].parse(f)
            row = table.get(f.stem)
            if row is not None and row.attributes["emotion"] != result.attributes["emotion"]:
                disagree.append(
                    f"{f.name}: table {row.attributes['emotion_raw']}, name {result.attributes['emotion_raw']}"
                )
        except BadName as err:
            result = table.get(f.stem, err)
        parsed.append(result)
    if disagree:
        log.warning(
            "%s: %d of its %d rows give another emotion than the file name (e.g. %s); the file names, "
            "EmoDB's own labels, are used.",
            table_path,
            len(disagree),
            len(table),
            "; ".join(disagree[:3]),
        )
    return files, _folder_ids(root, files), parsed


def scheme_corpus(root: Path, scheme: str, tables, max_utterances: int | None, spec: str, labels: str | None = None):
    from whisper_sae.audio.corpus import Corpus, Entry
    from whisper_sae.audio.io import load_audio

    files, ids, parsed = parse_folder(root, scheme, labels)

    def fail(err: BadName):
        raise err

    def entries() -> Iterator[Entry]:
        for f, utt, result in zip(files, ids, parsed):
            if isinstance(result, BadName):
                yield Entry(id=utt, load=lambda e=result: fail(e), path=str(f))
            else:
                yield Entry(
                    id=utt,
                    load=lambda p=f: load_audio(p),
                    path=str(f),
                    text=result.text,
                    speaker=result.speaker,
                    attributes=dict(result.attributes),
                )

    return Corpus(spec, entries, length=len(files), tables=tables, max_utterances=max_utterances)


def open_corpus(spec, tables, max_utterances):
    return scheme_corpus(
        Path(spec.path).expanduser(), spec.format, tables, max_utterances, spec.text, labels=spec.options.get("labels")
    )


# ------------------------------------------------------------------------------------------------
# The editable table


FIRST_COLUMNS = ("utterance_id", "path", "speaker", "text", "emotion", "emotion_raw")


def write_labels(root: Path, scheme: str | None, out: Path, labels: str | None = None) -> tuple[int, list[BadName]]:
    """Write the labels that ``scheme`` (detected when None) reads from ``root``'s names as a TSV at ``out``.

    Returns (rows written, the files left out as ``BadName`` errors). Values never hold tabs or newlines.
    """
    root = Path(root).expanduser()
    if scheme is None:
        scheme = detect_scheme(root) if root.is_dir() else None
        if scheme is None:
            raise ValueError(
                f"no naming scheme fits the audio file names of {root}; give one with --scheme ({', '.join(SCHEMES)})."
            )
    files, ids, parsed = parse_folder(root, scheme, labels)
    rows, bad = [], []
    for f, utt, result in zip(files, ids, parsed):
        if isinstance(result, BadName):
            bad.append(result)
            continue
        rows.append(
            {
                "utterance_id": utt,
                "path": f.relative_to(root).as_posix(),
                "speaker": result.speaker,
                "text": result.text,
                **result.attributes,
            }
        )
    columns = list(FIRST_COLUMNS) + sorted({k for r in rows for k in r} - set(FIRST_COLUMNS))

    def cell(value) -> str:
        return "" if value is None else " ".join(str(value).split())

    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(columns)] + ["\t".join(cell(r.get(c)) for c in columns) for r in rows]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(rows), bad

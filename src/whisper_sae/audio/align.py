"""Word and phone forced alignment of English speech to its transcript with pocketsphinx 5.

``align_utterance(audio, text)`` returns ``{"id", "words": [{"word", "start", "end"}], "phones":
[{"phone", "start", "end"}], "source"}``: times in seconds from the start of the audio (10-ms frames),
words upper-case as in LibriSpeech transcripts, phones the 39 ARPAbet phones without stress digits,
silences and fillers left out -- the format of ``../shared/data/librispeech/alignments`` and of the
synthetic corpus, read by ``analyze --alignments-dir``. ``align_corpus`` writes one such JSON per
utterance (``whisper-sae corpus align``). Needs ``pip install whisper-sae[align]`` (pocketsphinx, BSD; its
wheel ships the en-us acoustic model and the CMU dictionary used here).

How: the transcript is lower-cased, punctuation other than in-word apostrophes and hyphens is
dropped, and pocketsphinx aligns the word sequence (``set_align_text``), then a second pass gives
phone times (``set_alignment``/``get_alignment``). Words missing from the dictionary (pocketsphinx has
no letter-to-sound model) get a pronunciation in this order:

1. built from dictionary words: a possessive (``captain's`` = captain + Z/S/IH Z), the parts of a
   hyphenated word, or two dictionary words of three letters or more (``goldenness`` = golden + ness);
   their phones are kept like any other's;
2. otherwise from the audio: a first pass aligns the known words with a free loop of the 39 phones in
   the missing word's place (a JSGF grammar), and the phones it hears become the word's pronunciation for
   the real alignment. The word keeps its times; its phones are left out of ``phones`` (they are what the
   acoustic model heard, not the dictionary's), unless ``keep_oov_phones``. ``source`` names such words.

An utterance without a transcript, without words, or that pocketsphinx cannot align is skipped and
named (``AlignSummary.skipped``, ``OUT/skipped.tsv``). Files are named by utterance id; an id holding
characters unsafe in a file name (``/`` from ``NAME/`` prefixes or nested folders, ``%``, ...) is
percent-encoded (``alignment_filename``: ``a/b`` -> ``a%2Fb.json``), which ``AlignmentIndex`` also looks up.

Checked against the shipped test-clean alignments (also pocketsphinx 5.1.1, with g2p_en pronunciations
for missing words; 38 utterances, 4.6 min, 1 speaker; ``benchmarks/align_check.py``, docs/alignment.md):
all 721 words paired, boundary difference median 0 ms, 99.6 % within 20 ms, 99.8 % within 50 ms; 2593 of
2629 phones paired (the rest are the left-out phones of 4 missing words), median 0 ms, 99.8 % within 20 ms.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from whisper_sae.audio.constants import SAMPLE_RATE

log = logging.getLogger(__name__)

PHONES = tuple(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
)
_PHONE_SET = frozenset(PHONES)
_FRAME = 0.01  # pocketsphinx's default frame rate is 100 per second
INSTALL_HINT = "forced alignment needs pocketsphinx: pip install 'whisper-sae[align]' (or pip install pocketsphinx)"
_SAFE = "-_.,+=@~() "
_WIDE_BEAMS = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80, "lpbeam": 1e-60, "lponlybeam": 1e-60}


class AlignError(RuntimeError):
    """An utterance that cannot be aligned; the message says why."""


def alignment_filename(utt_id: str) -> str:
    """``<id>.json`` with characters unsafe in a file name percent-encoded (``a/b`` -> ``a%2Fb.json``)."""
    name = quote(utt_id, safe=_SAFE)
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name + ".json"


def _import_pocketsphinx():
    try:
        import pocketsphinx
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return pocketsphinx


def normalise_words(text: str) -> list[str]:
    """Lower-case words of ``text``: punctuation dropped, apostrophes and hyphens kept inside words."""
    text = text.lower().replace("’", "'").replace("‘", "'")
    text = re.sub(r"[^a-z0-9'\- ]+", " ", text)
    words = []
    for token in text.split():
        token = token.strip("'-")
        if token:
            words.append(token)
    return words


@dataclass
class AlignSummary:
    """What ``align_corpus`` did: files written, utterances kept from an earlier run, and skips."""

    out_dir: Path
    written: int = 0
    kept: int = 0
    skipped: list[dict] = field(default_factory=list)
    oov_words: dict[str, int] = field(default_factory=dict)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0


class Aligner:
    """One pocketsphinx decoder, reused for every utterance (loading the model takes a second or two).

    ``hmm``/``dictionary``: acoustic model folder and pronunciation dictionary (default: the en-us
    model and CMU dictionary in the pocketsphinx wheel). ``oov``: ``"phone-loop"`` (default, see the
    module docstring) or ``"skip"`` (skip utterances with a word missing from the dictionary).
    ``keep_oov_phones``: keep the phone-loop phones of such words in ``phones``.
    """

    def __init__(
        self,
        hmm: str | None = None,
        dictionary: str | None = None,
        *,
        oov: str = "phone-loop",
        keep_oov_phones: bool = False,
    ):
        if oov not in ("phone-loop", "skip"):
            raise ValueError(f"oov={oov!r}: use 'phone-loop' or 'skip'")
        ps = _import_pocketsphinx()
        kwargs = {"samprate": SAMPLE_RATE, "bestpath": False, "loglevel": "FATAL", "lm": None}
        if hmm is not None:
            kwargs["hmm"] = str(hmm)
        if dictionary is not None:
            kwargs["dict"] = str(dictionary)
        self.decoder = ps.Decoder(**kwargs)
        self.oov, self.keep_oov_phones = oov, keep_oov_phones
        self.version = _version()
        self._derived: dict[str, str | None] = {}
        self._wide = None
        self._n_temp = 0

    # ------------------------------------------------------------------ pronunciations

    def lookup(self, word: str) -> str | None:
        return self.decoder.lookup_word(word)

    def derive(self, word: str) -> str | None:
        """A pronunciation built from dictionary words, or None (see the module docstring)."""
        if word in self._derived:
            return self._derived[word]
        pron = None
        if word.endswith("'s") and (base := self.lookup(word[:-2])):
            pron = base + " " + _possessive(base)
        elif word.endswith("s'") and (base := self.lookup(word[:-1])):
            pron = base
        elif "-" in word:
            parts = [p for p in word.split("-") if p]
            prons = [self.lookup(p) or self.derive(p) for p in parts]
            pron = " ".join(prons) if parts and all(prons) else None
        elif word.endswith("in'") and (base := self.lookup(word[:-1] + "g")):
            pron = base[:-2] + "N" if base.endswith("NG") else base
        else:
            for cut in range(len(word) - 3, 2, -1):
                head, tail = self.lookup(word[:cut]), self.lookup(word[cut:])
                if head and tail:
                    pron = head + " " + tail
                    break
        self._derived[word] = pron
        return pron

    def _add_word(self, name: str, pron: str) -> None:
        if self.decoder.lookup_word(name) is None:
            self.decoder.add_word(name, pron, True)

    # ------------------------------------------------------------------ alignment

    def align(self, audio: np.ndarray, text: str, utt_id: str = "") -> dict:
        """Align ``audio`` (16 kHz mono float) to ``text``; raises ``AlignError`` when it cannot."""
        words = normalise_words(text or "")
        if not words:
            raise AlignError("the transcript has no words")
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1 or len(audio) < SAMPLE_RATE // 10:
            raise AlignError(f"audio of shape {audio.shape} is not mono or shorter than 0.1 s")
        raw = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        tokens: list[str] = []
        missing: list[int] = []
        for i, word in enumerate(words):
            if self.lookup(word):
                tokens.append(word)
            elif pron := self.derive(word):
                self._add_word(word, pron)
                tokens.append(word)
            else:
                tokens.append(word)
                missing.append(i)
        if missing and self.oov == "skip":
            raise AlignError("not in the dictionary: " + ", ".join(words[i] for i in missing))
        if missing:
            for i, pron in zip(missing, self._hear(raw, tokens, missing)):
                self._n_temp += 1
                name = f"oov{self._n_temp}_{re.sub(r'[^a-z0-9]', '', words[i]) or 'x'}"
                self._add_word(name, pron)
                tokens[i] = name
        entries_w, entries_p = self._force(raw, tokens)
        if len(entries_w) != len(words):
            raise AlignError(f"pocketsphinx aligned {len(entries_w)} of {len(words)} words")
        out_words = [
            {"word": w.upper(), "start": _t(start), "end": _t(end)} for w, (_, start, end) in zip(words, entries_w)
        ]
        oov_spans = [(entries_w[i][1], entries_w[i][2]) for i in missing]
        phones = []
        for name, start, end in entries_p:
            base = re.sub(r"\d", "", name.upper())
            if base not in _PHONE_SET:
                continue
            if any(s <= start and end <= e for s, e in oov_spans) and not self.keep_oov_phones:
                continue
            phones.append({"phone": base, "start": _t(start), "end": _t(end)})
        source = (
            f"pocketsphinx {self.version} forced alignment to the reference transcript (en-us acoustic model, "
            "cmudict-en-us.dict; whisper_sae.audio.align)"
        )
        if missing:
            source += "; pronounced as heard by a free phone loop, phones left out: " + ", ".join(
                words[i].upper() for i in missing
            )
        return {"id": utt_id, "words": out_words, "phones": phones, "source": source}

    def _decode(self, raw: bytes) -> None:
        d = self.decoder
        d.start_utt()
        d.process_raw(raw, full_utt=True)
        d.end_utt()

    def _force(self, raw: bytes, tokens: list[str]) -> tuple[list[tuple], list[tuple]]:
        """(words, phones) as (name, start frame, end frame exclusive), silences and fillers dropped from words."""
        d = self.decoder
        try:
            d.set_align_text(" ".join(tokens))
            self._decode(raw)
            d.set_alignment()
            self._decode(raw)
            alignment = d.get_alignment()
        except RuntimeError as err:
            raise AlignError(f"pocketsphinx could not align it ({err})") from None
        if alignment is None:
            raise AlignError("pocketsphinx found no alignment")
        # Flat iteration only: iterating a word entry for its phones crashes pocketsphinx 5.1.1.
        words = [
            (e.name, e.start, e.start + e.duration)
            for e in alignment.words()
            if not e.name.startswith(("<", "[", "+")) and e.duration > 0
        ]
        phones = [(e.name, e.start, e.start + e.duration) for e in alignment.phones()]
        return words, phones

    def _loop_decoder(self, wide: bool):
        """The decoder for the phone-loop pass: this one, or (``wide``) a second one with wider beams,
        which synthetic or unusual speech needs (made on first use)."""
        if not wide:
            return self.decoder
        if self._wide is None:
            ps = _import_pocketsphinx()
            config = {k: self.decoder.config[k] for k in ("hmm", "dict")}
            self._wide = ps.Decoder(
                samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL", lm=None, **config, **_WIDE_BEAMS
            )
            self._wide_slots = 0
        return self._wide

    def _loop_words(self, d, slot: int) -> list[str]:
        """Phone words of loop ``slot`` (each slot its own, so adjacent missing words come apart)."""
        names = [f"_p{slot}_{p.lower()}" for p in PHONES]
        if d.lookup_word(names[0]) is None:
            for name, phone in zip(names, PHONES):
                d.add_word(name, phone, name == names[-1])
        return names

    def _hear(self, raw: bytes, tokens: list[str], missing: list[int]) -> list[str]:
        """Pronunciations of the ``missing`` tokens: the phones a free phone loop in their place decodes.
        Tried with the default beams, then with wide ones."""
        last = "no path through the transcript"
        for wide in (False, True):
            d = self._loop_decoder(wide)
            for i, token in enumerate(tokens):  # words built from dictionary words must be in the second one too
                if i not in missing and d.lookup_word(token) is None and (pron := self.lookup(token)):
                    d.add_word(token, pron, True)
            try:
                heard = self._loop_pass(d, raw, tokens, missing)
            except RuntimeError as err:
                last = str(err)
                continue
            if heard is None:
                continue
            prons: dict[int, list[str]] = {s: [] for s in range(len(missing))}
            for word in heard:
                m = re.match(r"_p(\d+)_([a-z]+)$", word)
                if m:
                    prons[int(m.group(1))].append(m.group(2).upper())
            if all(prons.values()):
                return [" ".join(prons[s]) for s in range(len(missing))]
            last = "no phones heard for a missing word"
        raise AlignError(f"the phone-loop pass for words missing from the dictionary failed ({last})")

    def _loop_pass(self, d, raw: bytes, tokens: list[str], missing: list[int]) -> list[str] | None:
        slot_of = {i: s for s, i in enumerate(missing)}
        rules = [f"<oov{s}> = ({' | '.join(self._loop_words(d, s))})+;" for s in range(len(missing))]
        body = " ".join(f"<oov{slot_of[i]}>" if i in slot_of else t for i, t in enumerate(tokens))
        grammar = "#JSGF V1.0;\ngrammar utt;\n" + "\n".join(rules) + f"\npublic <utt> = {body};\n"
        d.add_jsgf_string("oovloop", grammar)
        try:
            d.activate_search("oovloop")
            d.start_utt()
            d.process_raw(raw, full_utt=True)
            d.end_utt()
            segments = d.seg() if d.hyp() is not None else None
            return [s.word for s in segments] if segments is not None else None
        finally:
            try:
                d.remove_search("oovloop")
            except (RuntimeError, KeyError):
                pass


def _t(frame: int) -> float:
    return round(frame * _FRAME, 2)


def _possessive(pron: str) -> str:
    last = pron.split()[-1]
    if last in ("S", "Z", "SH", "ZH", "CH", "JH"):
        return "IH Z"
    return "S" if last in ("P", "T", "K", "F", "TH") else "Z"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("pocketsphinx")
    except Exception:  # noqa: BLE001 — a version string is decoration
        return "?"


_DEFAULT: dict = {}


def align_utterance(audio_16k: np.ndarray, text: str, *, utt_id: str = "", aligner: Aligner | None = None) -> dict:
    """Align one utterance (16 kHz mono float audio) to its transcript; see the module docstring."""
    if aligner is None:
        if "aligner" not in _DEFAULT:
            _DEFAULT["aligner"] = Aligner()
        aligner = _DEFAULT["aligner"]
    return aligner.align(audio_16k, text, utt_id)


def align_corpus(
    corpus,
    out_dir: str | Path,
    *,
    max_utterances: int | None = None,
    overwrite: bool = False,
    oov: str = "phone-loop",
    progress: bool = True,
    aligner: Aligner | None = None,
) -> AlignSummary:
    """Align every utterance of ``corpus`` (a spec or ``Corpus``) and write ``OUT/<id>.json`` each.

    Utterances whose file exists are kept (a run can be resumed) unless ``overwrite``. Skips (no
    transcript, unreadable audio, alignment failures) are logged, returned and written to
    ``OUT/skipped.tsv``.
    """
    from tqdm.auto import tqdm

    from whisper_sae.audio.corpus import load_corpus

    corpus = load_corpus(corpus, max_utterances=max_utterances)
    aligner = aligner or Aligner(oov=oov)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = AlignSummary(out)
    try:
        total = len(corpus)
    except TypeError:
        total = None
    t0 = time.perf_counter()
    bar = tqdm(corpus, total=total, desc="aligning", unit="utt", disable=not progress)
    for utt in bar:
        path = out / alignment_filename(utt.id)
        if path.exists() and not overwrite:
            summary.kept += 1
            continue
        if not utt.text:
            _skip(summary, utt.id, "no transcript")
            continue
        try:
            doc = aligner.align(utt.audio, utt.text, utt.id)
        except AlignError as err:
            _skip(summary, utt.id, str(err))
            continue
        for word in re.findall(r"free phone loop, phones left out: (.*)$", doc["source"]):
            for w in word.split(", "):
                summary.oov_words[w] = summary.oov_words.get(w, 0) + 1
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        tmp.replace(path)
        summary.written += 1
        summary.audio_seconds += utt.duration
        bar.set_postfix(written=summary.written, skipped=len(summary.skipped))
    for skip in corpus.skipped:  # unreadable audio, as the corpus reader found it
        _skip(summary, skip["id"], skip["reason"])
    summary.wall_seconds = time.perf_counter() - t0
    lines = [f"{s['id']}\t{s['reason']}" for s in summary.skipped]
    (out / "skipped.tsv").write_text("id\treason\n" + "".join(line + "\n" for line in lines), encoding="utf-8")
    return summary


def _skip(summary: AlignSummary, utt_id: str, reason: str) -> None:
    log.warning("alignment: skipping utterance %s: %s", utt_id, reason)
    summary.skipped.append({"id": utt_id, "reason": reason})

"""Emotion in Whisper's SAE features: acted emotional speech (RAVDESS, TESS, SAVEE) through extraction,
SAEs, probes on held-out actors, a cross-corpus check, loudness/pitch correlations of the top features,
and an ablation with its WER cost. Writes the numbers behind docs/emotion-report.md (JSON + Markdown).

Data: ``bash scripts/get_real_speech.sh --dest /work/data`` (RAVDESS, TESS, SAVEE under /work/data).
Stages (each skips what is already on disk, so a rerun resumes)::

    python benchmarks/emotion.py subsets  --out RUNS      # balanced subsamples as folders of symlinks
    python benchmarks/emotion.py extract  --out RUNS --model tiny.en --hooks encoder.blocks.1,encoder.out,decoder.out
    python benchmarks/emotion.py train    --out RUNS --model tiny.en --hooks ...   # SAEs on actors 1-16 only
    python benchmarks/emotion.py probe    --out RUNS --model tiny.en --hook encoder.out --sae DIR
    python benchmarks/emotion.py prosody  --out RUNS --model tiny.en --hook encoder.out
    python benchmarks/emotion.py tables   --out RUNS --md docs/emotion-tables.md

Subsets (chosen so the text cannot carry the label): RAVDESS 16 clips per actor (repetition 1; neutral at
normal intensity, the other seven emotions at strong intensity; both statements for every emotion), so
each emotion has exactly one clip of each sentence per actor; TESS the same 10 randomly chosen words for
every speaker and emotion; SAVEE sentences 01-04 of every emotion and speaker. The first 256 RAVDESS
clips in store order are actors 1-16 (the SAE-training actors when no LibriSpeech SAE is given).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

DATA = Path(os.environ.get("WHISPER_SAE_DATA", "/work/data"))
RAVDESS = DATA / "ravdess/ravdess"
TESS = DATA / "tess/TESS_Toronto_emotional_speech_set_data"
SAVEE = DATA / "savee/AudioData"
TESS_FOREIGN = {"OAF_angry/OAF_back_angry.wav", "YAF_sad/YAF_beg_sad.wav"}  # 44.1-kHz strays (REAL-SPEECH.md)
SAE_ACTORS = 16
"""RAVDESS actors 1..16 train the fallback SAEs; the store lists them first (256 clips)."""


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        dest.symlink_to(src.resolve())


def make_subsets(out: Path, tess_words: int = 10, savee_sentences: int = 4, seed: int = 0) -> dict[str, int]:
    """Folders of symlinks (``out/subsets/{ravdess,tess,savee}``) holding the balanced subsamples."""
    root = out / "subsets"
    counts = {}
    n = 0
    for wav in sorted(RAVDESS.glob("Actor_*/*.wav")):
        _mod, _ch, emo, inten, _stmt, rep, _actor = wav.stem.split("-")
        if rep == "01" and (inten == "02" or emo == "01"):
            _link(wav, root / "ravdess" / wav.parent.name / wav.name)
            n += 1
    counts["ravdess"] = n
    words = sorted({p.stem.split("_")[1] for p in TESS.glob("OAF_neutral/*.wav")})
    chosen = set(random.Random(seed).sample(words, tess_words))
    n = 0
    for wav in sorted(TESS.glob("*/*.wav")):
        rel = f"{wav.parent.name}/{wav.name}"
        if rel not in TESS_FOREIGN and wav.stem.split("_")[1] in chosen:
            _link(wav, root / "tess" / rel)
            n += 1
    counts["tess"] = n
    n = 0
    for wav in sorted(SAVEE.glob("*/*.wav")):
        if int("".join(c for c in wav.stem if c.isdigit())) <= savee_sentences:
            _link(wav, root / "savee" / wav.parent.name / wav.name)
            n += 1
    counts["savee"] = n
    (root / "subsets.json").write_text(json.dumps({"counts": counts, "tess_words": sorted(chosen)}, indent=1))
    return counts


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "whisper_sae", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def store_path(out: Path, corpus: str, model: str) -> Path:
    return out / "stores" / f"{corpus}-{model}"


def extract(out: Path, model: str, hooks: str, corpora=("ravdess", "tess", "savee")) -> None:
    """One store per corpus; RAVDESS first stops at the SAE-training actors and keeps a copy of that
    part (``ravdess-MODEL-sae``) for training, then resumes to all 24 actors."""
    for corpus in corpora:
        dest = store_path(out, corpus, model)
        spec = f"{corpus}:{out / 'subsets' / corpus}"
        base = ["extract", "--model", model, "--corpus", spec, "--hooks", hooks, "--out", str(dest), "--no-progress"]
        if corpus == "ravdess":
            part = dest.with_name(dest.name + "-sae")
            if not (part / "manifest.json").is_file():
                _cli(*base, "--max-utterances", str(16 * SAE_ACTORS))
                shutil.copytree(dest, part, ignore=shutil.ignore_patterns(".whisper-sae.lock*"))
        _cli(*base)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=["subsets", "extract"])
    p.add_argument("--out", type=Path, required=True, help="runs folder (stores, SAEs, probes, results)")
    p.add_argument("--model", default="tiny.en", help="Whisper model (tiny.en or base)")
    p.add_argument("--hooks", default="encoder.blocks.1,encoder.out,decoder.out", help="hooks to extract")
    p.add_argument("--corpora", default="ravdess,tess,savee", help="corpora to extract, comma-separated")
    a = p.parse_args(argv)
    if a.stage == "subsets":
        print(make_subsets(a.out))
    elif a.stage == "extract":
        extract(a.out, a.model, a.hooks, tuple(a.corpora.split(",")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The non-speech corpus: layout and metadata that load_corpus reads, determinism, and that each kind
sounds like what it claims (level, spectrum, pitch)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_sae.audio import load_corpus
from whisper_sae.audio.nonspeech import KINDS, make_clip, make_nonspeech_corpus
from whisper_sae.cli import main


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_nonspeech_corpus(tmp_path_factory.mktemp("ns") / "c", n_per_kind=2, seed=3, max_seconds=6)


@pytest.fixture(scope="module")
def utterances(corpus):
    return {u.id: u for u in load_corpus(corpus)}


def _band_db(audio, lo, hi):
    """Mean power per FFT bin in [lo, hi) Hz, in dB."""
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
    return 10 * np.log10(spectrum[(freqs >= lo) & (freqs < hi)].mean())


def test_layout_and_attributes(corpus, utterances):
    assert len(utterances) == 2 * len(KINDS)
    for kind in KINDS:
        for i in range(2):
            assert (corpus / "nonspeech" / kind / f"{kind}-{i:03d}.flac").is_file()
            u = utterances[f"{kind}-{i:03d}"]
            assert u.attributes["kind"] == kind and u.attributes["seed"] == 3
            assert u.text is None
            assert 1.0 <= u.duration <= 6.0
            assert u.duration == pytest.approx(u.attributes["duration"], abs=1e-4)
    summary = json.loads((corpus / "corpus.json").read_text())
    assert summary["kind"] == "nonspeech" and summary["n_clips"] == 16 and summary["seed"] == 3


def test_levels_and_silence(utterances):
    for u in utterances.values():
        if u.attributes["kind"] == "silence":
            assert not np.any(u.audio) and u.attributes["level_dbfs"] == ""
            continue
        level = 20 * np.log10(np.sqrt(np.mean(u.audio.astype(np.float64) ** 2)))
        assert level == pytest.approx(u.attributes["level_dbfs"], abs=0.5), u.id
        assert -46 <= level <= -14 and np.abs(u.audio).max() < 1.0


@pytest.mark.parametrize("kind, slope", [("white_noise", 0.0), ("pink_noise", -12.0), ("brown_noise", -24.0)])
def test_noise_colours(kind, slope):
    """Power per Hz over four octaves (200-400 Hz to 3.2-6.4 kHz): flat, -3 dB and -6 dB per octave."""
    audio, _ = make_clip(kind, 0, seed=1, min_seconds=5, max_seconds=5)
    assert _band_db(audio, 3200, 6400) - _band_db(audio, 200, 400) == pytest.approx(slope, abs=2.0)


def test_tone_chord_room_tone_and_music_are_what_they_say():
    audio, row = make_clip("tone", 2, seed=0, min_seconds=3, max_seconds=3)
    freq = float(row["detail"].split()[1])
    peak = np.fft.rfftfreq(len(audio), 1 / 16000)[np.argmax(np.abs(np.fft.rfft(audio)))]
    assert peak == pytest.approx(freq, abs=1.0)
    audio, row = make_clip("chord", 0, seed=0, min_seconds=3, max_seconds=3)
    root = float(row["detail"].split("root ")[1].split()[0])
    assert _band_db(audio, root - 2, root + 2) - _band_db(audio, root + 10, root + 30) > 30
    audio, row = make_clip("room_tone", 0, seed=0, min_seconds=4, max_seconds=4)
    hum = float(row["detail"].split("hum ")[1].split()[0])
    cutoff = float(row["detail"].split("low-pass ")[1].split()[0])
    assert _band_db(audio, hum - 1, hum + 1) - _band_db(audio, hum + 5, hum + 9) > 10
    assert _band_db(audio, 20, cutoff / 2) - _band_db(audio, 4 * cutoff, 8 * cutoff) > 30
    audio, _ = make_clip("music", 0, seed=0, min_seconds=6, max_seconds=6)
    frames = audio[: len(audio) // 1600 * 1600].reshape(-1, 1600)  # 100-ms frames: notes come and go
    energy = (frames**2).mean(1)
    assert energy.min() > 0 and energy.max() / energy.min() > 1.5


def test_deterministic_and_stable_when_growing(tmp_path, corpus):
    again = make_nonspeech_corpus(tmp_path / "again", n_per_kind=3, seed=3, max_seconds=6)
    for path in (corpus / "nonspeech").rglob("*.flac"):
        assert (again / path.relative_to(corpus)).read_bytes() == path.read_bytes()
    other, _ = make_clip("pink_noise", 0, seed=4, max_seconds=6)
    same, _ = make_clip("pink_noise", 0, seed=3, max_seconds=6)
    assert len(other) != len(same) or not np.array_equal(other, same)


def test_overwrite(tmp_path):
    out = make_nonspeech_corpus(tmp_path / "c", n_per_kind=2, kinds=["tone"], max_seconds=2)
    with pytest.raises(ValueError, match="not empty"):
        make_nonspeech_corpus(out, n_per_kind=1, kinds=["tone"], max_seconds=2)
    make_nonspeech_corpus(out, n_per_kind=1, kinds=["silence"], max_seconds=2, overwrite=True)
    assert sorted(u.id for u in load_corpus(out)) == ["silence-000"]


def test_cli_nonspeech(tmp_path, capsys):
    out = tmp_path / "ns"
    assert (
        main(
            [
                "corpus",
                "nonspeech",
                "--out",
                str(out),
                "--per-kind",
                "1",
                "--seed",
                "5",
                "--kinds",
                "tone,music",
                "--max-seconds",
                "3",
            ]
        )
        == 0
    )
    assert "wrote 2 non-speech clips" in capsys.readouterr().out
    assert {u.attributes["kind"] for u in load_corpus(out)} == {"tone", "music"}
    assert main(["corpus", "nonspeech", "--out", str(tmp_path / "x"), "--kinds", "speech"]) == 1
    assert "unknown non-speech kinds ['speech']" in capsys.readouterr().err


def test_cli_help_lists_every_kind():
    """The CLI names the kinds without importing numpy; the list must not drift from KINDS."""
    from whisper_sae.audio.nonspeech import KINDS
    from whisper_sae.cli import build_parser

    parser = build_parser()
    corpus = next(a for a in parser._actions if hasattr(a, "choices") and a.choices and "corpus" in a.choices).choices[
        "corpus"
    ]
    nonspeech = next(
        a for a in corpus._actions if hasattr(a, "choices") and a.choices and "nonspeech" in a.choices
    ).choices["nonspeech"]
    text = " ".join(nonspeech.format_help().split())
    assert all(kind in text for kind in KINDS), text

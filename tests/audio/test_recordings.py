"""Real recordings cut into a non-speech corpus: clip boundaries, kinds from folders, resampling and
mono folding, the generated corpus's layout (load_corpus reads it), and errors that write nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import load_corpus
from whisper_sae.audio.recordings import cut_recordings
from whisper_sae.audio.utterance import AudioError
from whisper_sae.cli import main


def _tone(seconds: float, rate: int = 16000, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture()
def recordings(tmp_path):
    root = tmp_path / "rec"
    (root / "music").mkdir(parents=True)
    (root / "noise").mkdir()
    sf.write(root / "music" / "long.wav", _tone(65.0), 16000)  # 30 + 30 + 5
    sf.write(root / "music" / "stereo44k.flac", _tone(12.0, rate=44100, channels=2), 44100)
    sf.write(root / "noise" / "tail.wav", _tone(30.5), 16000)  # 30 + 0.5 (tail dropped at min 1 s)
    sf.write(root / "top.wav", np.zeros(16000 * 3, dtype=np.float32), 16000)  # directly in the folder
    return root


def test_clips_kinds_and_layout(recordings, tmp_path):
    out = cut_recordings(recordings, tmp_path / "c")
    meta = {u.id: u for u in load_corpus(out)}
    kinds = {}
    for u in meta.values():
        kinds.setdefault(u.attributes["kind"], []).append(u)
    # music: long.wav -> 3 clips, stereo44k -> 1; noise: 1 (0.5-s tail dropped); rec (the folder's own name): 1
    assert {k: len(v) for k, v in kinds.items()} == {"music": 4, "noise": 1, "rec": 1}
    durations = sorted(round(u.duration, 2) for u in kinds["music"])
    assert durations == [5.0, 12.0, 30.0, 30.0]
    for u in meta.values():
        assert u.text is None and u.audio.ndim == 1
        assert (out / "nonspeech" / u.attributes["kind"] / f"{u.id}.flac").is_file()
    # the 44.1-kHz stereo file is resampled to 16 kHz mono with its pitch kept
    stereo = next(u for u in kinds["music"] if u.attributes["source"].endswith("stereo44k.flac"))
    spectrum = np.abs(np.fft.rfft(stereo.audio))
    assert np.fft.rfftfreq(len(stereo.audio), 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=2)
    # clips follow each other in the file: the second clip of long.wav starts at 30 s
    long_clips = sorted((u.attributes["start"], u.id) for u in kinds["music"] if "long" in u.attributes["source"])
    assert [s for s, _ in long_clips] == [0.0, 30.0, 60.0]
    silent = kinds["rec"][0]
    assert not np.any(silent.audio) and silent.attributes["level_dbfs"] == ""
    assert kinds["noise"][0].attributes["level_dbfs"] == pytest.approx(-23.0, abs=0.2)  # 0.1 sine = -23 dBFS
    summary = json.loads((out / "corpus.json").read_text())
    assert summary["kind"] == "nonspeech" and summary["n_clips"] == 6 and summary["files"] == 4


def test_max_clips_per_file_and_clip_length(recordings, tmp_path):
    out = cut_recordings([recordings / "music"], tmp_path / "c", clip_seconds=10, max_clips_per_file=2)
    utts = load_corpus(out)
    assert len(utts) == 4  # two per file
    assert all(u.duration <= 10.0 + 1e-6 for u in utts)
    assert {u.attributes["kind"] for u in utts} == {"music"}


def test_a_bad_file_is_named_and_nothing_is_written(recordings, tmp_path):
    (recordings / "noise" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    out = tmp_path / "c"
    with pytest.raises(AudioError, match="broken.wav"):
        cut_recordings(recordings, out)
    assert not out.exists()


def test_refuses_to_overwrite_other_folders(recordings, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        cut_recordings(recordings, other)
    with pytest.raises(ValueError, match="other than a non-speech corpus"):
        cut_recordings(recordings, other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    out = cut_recordings(recordings, tmp_path / "c")
    cut_recordings([recordings / "noise"], out, overwrite=True)
    assert {u.attributes["kind"] for u in load_corpus(out)} == {"noise"}
    with pytest.raises(ValueError, match="clip_seconds <= 30"):
        cut_recordings(recordings, tmp_path / "d", clip_seconds=45)


def test_cli_cut(recordings, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["corpus", "cut", str(recordings), "--out", str(out), "--clip-seconds", "20"]) == 0
    printed = capsys.readouterr().out
    assert "from 4 recordings" in printed and "music 5" in printed  # 65 s -> 20+20+20+5, 12 s -> 1
    assert main(["corpus", "cut", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 1
    assert "not a folder of recordings" in capsys.readouterr().err

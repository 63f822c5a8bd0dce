"""load_audio / check_audio: every kind of bad input gets a clear AudioError; good audio comes out 16 kHz mono."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, AudioError, check_audio, load_audio


def tone(seconds: float, sr: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_16k_mono_wav_round_trips_exactly(tmp_path):
    x = tone(1.0, SAMPLE_RATE)
    sf.write(tmp_path / "a.wav", x, SAMPLE_RATE, subtype="FLOAT")
    y = load_audio(tmp_path / "a.wav")
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(0.5, SAMPLE_RATE, 440), tone(0.5, SAMPLE_RATE, 660)
    sf.write(tmp_path / "s.flac", np.stack([left, right], axis=1), SAMPLE_RATE)
    y = load_audio(tmp_path / "s.flac")
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-4)  # FLAC is 16-bit


def test_8k_audio_is_resampled_keeping_duration_and_pitch(tmp_path):
    sf.write(tmp_path / "n.wav", tone(2.0, 8000, 300.0), 8000)
    y = load_audio(tmp_path / "n.wav")
    assert len(y) == 2 * SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(len(y), 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(300.0, abs=1.0)


def test_44k1_ogg_is_decoded_and_resampled(tmp_path):
    sf.write(tmp_path / "o.ogg", tone(1.0, 44100), 44100, format="OGG", subtype="VORBIS")
    y = load_audio(tmp_path / "o.ogg")
    assert abs(len(y) - SAMPLE_RATE) <= 1
    assert 0.3 < np.abs(y).max() < 0.7


def test_mp3_decodes(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3")
    sf.write(tmp_path / "m.mp3", tone(1.0, 16000), 16000, format="MP3")
    y = load_audio(tmp_path / "m.mp3")
    assert abs(len(y) - SAMPLE_RATE) < 0.1 * SAMPLE_RATE  # the encoder pads a little


def test_audio_longer_than_30s_is_kept_whole(tmp_path):
    sf.write(tmp_path / "long.flac", tone(47.5, SAMPLE_RATE), SAMPLE_RATE)
    assert len(load_audio(tmp_path / "long.flac")) == int(47.5 * SAMPLE_RATE)


def test_silence_is_valid_audio(tmp_path):
    sf.write(tmp_path / "quiet.wav", np.zeros(8000, np.float32), SAMPLE_RATE)
    y = load_audio(tmp_path / "quiet.wav")
    assert len(y) == 8000 and not y.any()


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEgarbage", b"\x00" * 1000])
def test_corrupt_or_empty_file_names_the_file(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="broken.wav"):
        load_audio(path)


def test_wav_with_no_samples_is_empty(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match=r"zero.wav.*empty"):
        load_audio(tmp_path / "zero.wav")


def test_nan_and_inf_samples_are_rejected(tmp_path):
    x = tone(0.5, SAMPLE_RATE)
    x[100] = np.nan
    x[200] = np.inf
    sf.write(tmp_path / "nan.wav", x, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan.wav: 2 of 8000 samples are NaN or infinite"):
        load_audio(tmp_path / "nan.wav")


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "absent.flac")


def test_check_audio_accepts_int16_and_channels_first():
    pcm = (tone(0.25, SAMPLE_RATE) * 32767).astype(np.int16)
    np.testing.assert_allclose(check_audio(pcm, SAMPLE_RATE), pcm / 32768.0, atol=1e-6)
    stereo_cf = np.stack([pcm, pcm]).astype(np.float32) / 32768.0  # [channels, samples]
    assert check_audio(stereo_cf, SAMPLE_RATE).shape == (len(pcm),)
    with pytest.raises(AudioError, match="clip: the audio is empty"):
        check_audio(np.zeros(0), SAMPLE_RATE, "clip")

"""Whisper's fixed audio geometry, each figure derived from the ones before it (as openai/whisper's
``audio.py`` does), so that no module writes ``30 * 16000`` or ``0.02`` again.

Whisper hears 16-kHz mono audio in 30-s windows; the log-mel hop is 10 ms (160 samples), and the
encoder's second convolution has stride 2, so each encoder position covers 20 ms: 1500 per window.
"""

from __future__ import annotations

SAMPLE_RATE = 16_000  # Hz; every corpus is resampled to this
WINDOW_SECONDS = 30  # one encoder window
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE  # 480,000 samples
HOP_LENGTH = 160  # samples per log-mel frame (10 ms)
N_FFT = 400  # STFT window of the log-mel (25 ms)
MEL_FRAMES = WINDOW_SAMPLES // HOP_LENGTH  # 3000 log-mel frames per window
ENCODER_STRIDE = 2  # conv2's stride halves the mel frames
SAMPLES_PER_FRAME = HOP_LENGTH * ENCODER_STRIDE  # 320 samples per encoder position
FRAMES_PER_WINDOW = MEL_FRAMES // ENCODER_STRIDE  # 1500 encoder positions per window
FRAMES_PER_SECOND = SAMPLE_RATE // SAMPLES_PER_FRAME  # 50
FRAME_SECONDS = SAMPLES_PER_FRAME / SAMPLE_RATE  # 0.02 s per encoder position

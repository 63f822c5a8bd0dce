"""Whisper's log-mel features computed with torch, on the model's device.

The ``transformers`` feature extractor computes them with numpy on the CPU (and, asked for a GPU,
still hands the result back through numpy). Extraction then spends much of a GPU's time waiting for
the CPU, and even on a CPU the numpy STFT is slower than torch's. This module computes the same
features as one batched torch expression on the device the model lives on, with the model's own mel
filterbank (taken from its feature extractor, so 80- and 128-bin models both work):

* each clip zero-padded to the 30-s window;
* power spectrum of a centred STFT (periodic Hann window of ``N_FFT`` samples, hop ``HOP_LENGTH``,
  reflect padding), the last frame dropped so that 30 s give 3000 frames;
* mel filterbank, then log10 of it floored at 1e-10;
* a dynamic range of 8 (log10 units) below the clip's maximum, then ``(x + 4) / 4``.

``tests/whisper/test_features.py`` checks the result against the feature extractor (max abs difference
about 1e-5 on speech, far below the 1e-4 asked of it). The numpy path stays available as
``LoadedWhisper.log_mel(..., backend="numpy")``.
"""

from __future__ import annotations

import numpy as np
import torch

from whisper_sae.audio.constants import HOP_LENGTH, MEL_FRAMES, N_FFT, WINDOW_SAMPLES

LOG_FLOOR = 1e-10  # power floor before log10
DYNAMIC_RANGE = 8.0  # log10 units kept below each clip's loudest bin

_FILTERS: dict[tuple[int, str], torch.Tensor] = {}


def mel_filters(feature_extractor, device: torch.device) -> torch.Tensor:
    """The feature extractor's filterbank [n_mels, N_FFT // 2 + 1] as float32 on ``device`` (cached)."""
    bank = np.asarray(feature_extractor.mel_filters)
    if bank.shape[0] != N_FFT // 2 + 1:
        raise ValueError(
            f"the feature extractor's mel filterbank has {bank.shape[0]} frequency bins, but an "
            f"STFT of {N_FFT} samples has {N_FFT // 2 + 1}; use backend='numpy' for this extractor"
        )
    key = (id(feature_extractor), str(device))
    cached = _FILTERS.get(key)
    if cached is None or cached.shape != bank.T.shape:
        cached = _FILTERS[key] = torch.from_numpy(bank.T.astype(np.float32)).to(device)
    return cached


def log_mel_torch(audios, feature_extractor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Log-mel features [B, n_mels, 3000] (float32, on ``device``) of 16-kHz clips of at most 30 s each."""
    device = torch.device(device)
    batch = torch.zeros(len(audios), WINDOW_SAMPLES, dtype=torch.float32)
    for i, audio in enumerate(audios):
        clip = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        batch[i, : len(clip)] = clip
    batch = batch.to(device, non_blocking=True)
    window = torch.hann_window(N_FFT, periodic=True, device=device)
    spectrum = torch.stft(
        batch, N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="reflect", return_complex=True
    )[..., :MEL_FRAMES]
    power = spectrum.real.square() + spectrum.imag.square()
    bank = mel_filters(feature_extractor, device)
    if device.type == "cuda":  # in fp64 there: a TF32 matmul (if enabled) would move the features by ~1e-4
        mel = torch.matmul(bank.double(), power.double()).float()
    else:
        mel = torch.matmul(bank, power)  # [B, n_mels, 3000]
    logs = mel.clamp_min(LOG_FLOOR).log10()
    top = logs.amax(dim=(1, 2), keepdim=True)
    return (torch.maximum(logs, top - DYNAMIC_RANGE) + 4.0) / 4.0

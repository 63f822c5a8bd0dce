"""Features, tokens and greedy transcription for a loaded Whisper (the methods of ``LoadedWhisper``)."""

from __future__ import annotations

import inspect

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers.models.whisper.modeling_whisper import WhisperDecoder

from whisper_sae.audio.constants import SAMPLE_RATE, WINDOW_SAMPLES, WINDOW_SECONDS

from .features import log_mel_torch

# transformers 5 renamed the decoder's ``past_key_values`` argument to ``cache``; accept either version.
CACHE_KWARG = "cache" if "cache" in inspect.signature(WhisperDecoder.forward).parameters else "past_key_values"


# Log-mel features: "torch" (on the model's device, features.py) or "numpy" (transformers' feature extractor);
# "auto" picks torch on a GPU (no host round trip per batch) and numpy on a CPU, where the torch STFT was no
# faster (0.94x in benchmarks/extract.py) and its rounding (1e-7) moved 1.3 % of a store's fp16 values by one step,
# enough to change the demo's spliced WER through one looping utterance. CPU stores stay as they were.
MEL_BACKEND = "auto"


def resolve_mel_backend(backend: str | None, device) -> str:
    """The backend ``log_mel`` uses: ``backend`` when given, else ``MEL_BACKEND``, "auto" resolved by ``device``."""
    backend = MEL_BACKEND if backend is None else backend
    if backend == "auto":
        return "torch" if torch.device(device).type == "cuda" else "numpy"
    return backend


class LoadedWhisperMethods:
    """Mixed into ``LoadedWhisper``; relies on its ``model``, ``feature_extractor``, ``tokenizer`` fields."""

    def log_mel(self, audios: list[np.ndarray], *, backend: str | None = None) -> torch.Tensor:
        """Log-mel features [B, n_mels, 3000] of 16-kHz mono clips, each padded to Whisper's 30-s window,
        on the model's device. ``backend``: ``"auto"`` (the default, ``MEL_BACKEND``: torch on a GPU, numpy on a
        CPU), ``"torch"`` (computed on the model's device, see ``features.py``) or ``"numpy"`` (the ``transformers`` feature extractor, which hands its result back through numpy)."""
        for i, audio in enumerate(audios):
            if len(audio) > WINDOW_SAMPLES:
                raise ValueError(
                    f"Clip {i} is {len(audio) / SAMPLE_RATE:.1f} s long; Whisper's window holds at most "
                    f"{WINDOW_SECONDS} s. Split longer audio with whisper_sae.audio.split_windows first."
                )
        backend = resolve_mel_backend(backend, self.device)
        if backend == "torch":
            return log_mel_torch(audios, self.feature_extractor, self.device)
        if backend != "numpy":
            raise ValueError(f"log-mel backend {backend!r} is not known; use 'auto', 'torch' or 'numpy'")
        features = self.feature_extractor(
            [np.asarray(a, dtype=np.float32) for a in audios],
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            device=str(self.device) if self.device.type == "cuda" else "cpu",
        )["input_features"]
        return features.to(self.device)

    def text_tokens(self, text: str) -> list[int]:
        """Token ids of a transcript as Whisper writes it: one leading space, no special tokens."""
        return self.tokenizer.encode(" " + text.strip(), add_special_tokens=False)

    def prompt_for(self, language: str | None = None) -> list[int]:
        """The transcription prompt (no timestamps) for ``language``; English when None."""
        if language in (None, "en"):
            return list(self.prompt_ids)
        if not self.is_multilingual:
            raise ValueError(
                f"{self.name} is an English-only model; language {language!r} needs a multilingual "
                "model such as 'base'."
            )
        token = self.tokenizer.convert_tokens_to_ids(f"<|{language}|>")
        if token is None or self.tokenizer.convert_ids_to_tokens(token) != f"<|{language}|>":
            raise ValueError(f"{language!r} is not a Whisper language code (examples: 'en', 'de', 'fr').")
        return [self.prompt_ids[0], token, *self.prompt_ids[2:]]

    def _suppressed(self, first_step: bool) -> torch.Tensor:
        gen = self.model.generation_config
        ids = set(gen.suppress_tokens or [])
        if first_step:
            ids |= set(gen.begin_suppress_tokens or [self.eot_id])
        # Special tokens (start, language, task, timestamps) never belong to a plain transcript.
        ids |= set(range(self.prompt_ids[0], self.config.vocab_size))
        return torch.tensor(sorted(ids), device=self.device)

    @torch.inference_mode()
    def greedy_tokens(self, features: torch.Tensor, prompt: list[int], max_new_tokens: int) -> list[list[int]]:
        """Greedy decoding with a KV cache; returns each clip's text tokens (without prompt or end token)."""
        encoder_hidden = self.model.model.encoder(features.to(self.model.dtype)).last_hidden_state
        return self.greedy_from_encoder(encoder_hidden, prompt, max_new_tokens)

    @torch.inference_mode()
    def greedy_from_encoder(
        self, encoder_hidden: torch.Tensor, prompt: list[int], max_new_tokens: int
    ) -> list[list[int]]:
        """``greedy_tokens`` from given encoder outputs [B, 1500, d] (e.g. an earlier layer's, for a lens)."""
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        model = self.model
        encoder_hidden = encoder_hidden.to(self.device, model.dtype)
        batch = encoder_hidden.shape[0]
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        inputs = torch.tensor([prompt] * batch, device=self.device)
        suppress_first, suppress = self._suppressed(True), self._suppressed(False)
        done = torch.zeros(batch, dtype=torch.bool, device=self.device)
        out: list[torch.Tensor] = []
        for step in range(max_new_tokens):
            hidden = model.model.decoder(
                input_ids=inputs, encoder_hidden_states=encoder_hidden, use_cache=True, **{CACHE_KWARG: cache}
            ).last_hidden_state
            logits = model.proj_out(hidden[:, -1]).float()
            logits[:, suppress_first if step == 0 else suppress] = -float("inf")
            next_ids = torch.where(done, self.eot_id, logits.argmax(-1))
            out.append(next_ids)
            done |= next_ids == self.eot_id
            if bool(done.all()):
                break
            inputs = next_ids[:, None]
        tokens = torch.stack(out, 1).tolist() if out else [[] for _ in range(batch)]
        return [seq[: seq.index(self.eot_id)] if self.eot_id in seq else seq for seq in tokens]

    def transcribe(
        self,
        audios: list[np.ndarray],
        *,
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        language: str | None = None,
        progress: bool = False,
    ) -> list[str]:
        """Greedy transcripts (no timestamps) of clips of at most 30 s, in order."""
        prompt = self.prompt_for(language)
        max_new = max_new_tokens or self.config.max_target_positions - len(prompt)
        texts: list[str] = []
        starts = range(0, len(audios), batch_size)
        for start in tqdm(starts, desc="transcribe", unit="batch", disable=not progress):
            features = self.log_mel(audios[start : start + batch_size])
            for seq in self.greedy_tokens(features, prompt, max_new):
                texts.append(self.tokenizer.decode(seq, skip_special_tokens=True).strip())
        return texts

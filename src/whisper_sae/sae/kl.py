"""The KL objective: train an SAE on what Whisper's decoder needs, not on what its activations look like.

An MSE-trained SAE can explain most of the variance at its hook and still wreck the transcript, because
the error it leaves lies in directions the rest of the network amplifies. This objective runs Whisper
from the hook to the decoder's logits with the SAE's reconstruction spliced in, and minimises
KL(clean logits || spliced logits) over the transcript's tokens (Braun et al. 2024's "end-to-end" SAEs;
Karvonen's KL fine-tuning), keeping the architecture's own sparsity (TopK/BatchTopK's k, ReLU's L1 or
JumpReLU's L0 penalty, with AuxK for dead features).

The computation, per optimizer step on a batch of utterances (``SplicedWhisper``):

1. **Prefix, no grad** (``prefix``): log-mel features, then Whisper up to the hook. For an encoder hook
   that is the encoder's first blocks; for a decoder hook, the whole encoder and the decoder up to the
   hook, teacher-forced. Nothing of this is kept for autograd.
2. **Clean logits, no grad**: the suffix (step 3) on the unchanged activations. They are computed by the
   same code path as the spliced ones, so an SAE that reconstructs exactly gives a KL of exactly zero.
3. **Suffix, with grad** (``hidden`` + ``logits``): the SAE's reconstruction replaces the activations on
   REAL positions only (audio frames of the utterance; padding frames of the 30-s window keep Whisper's
   own values, as the spliced evaluation does; for decoder hooks, the unpadded token positions), then
   the rest runs: the encoder blocks after the hook and its final layer norm, then the decoder
   teacher-forced on the reference tokens (or Whisper's own transcript where there is no reference),
   then the output projection on the predicting positions only. Whisper's weights are frozen
   (``requires_grad=False``), so the backward pass computes gradients of activations only, and the SAE's
   parameters are the only leaves that receive one.

What is cached: nothing across steps. An activation store cannot stand in for the prefix: it holds the
real frames only, and the suffix also needs Whisper's activations on the padding frames (keys and values
of encoder self-attention, and of the decoder's cross-attention at ``encoder.out``). Each step therefore
costs one clean prefix pass, two suffix passes (clean without grad, spliced with grad) and one backward
through the suffix. For ``encoder.out`` the suffix is the decoder alone, so the step is dominated by the
encoder prefix (1500 frames per utterance); for decoder hooks the decoder's blocks before the hook are
re-run inside the spliced pass (cheap: tens of tokens, and no graph is built for them).
Measured on tiny.en at ``encoder.out`` (TopK 1536, 4 LibriSpeech utterances per step, a 2-core CPU shared
with other jobs at load 10-16): 0.13-0.30 utterances/s, 5-9 transcript tokens/s, 77-157 frames/s; the
prefix (log-mel + encoder) took 50-56 % of each step, the two suffix passes, the backward pass and the
SAE's update the rest (``benchmarks/results/kl-finetune.md``; ``metrics.jsonl`` records
``utterances_per_s``, ``text_tokens_per_s`` and ``prefix_frac`` for every run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from whisper_sae.whisper import (
    HookPoint,
    patch,
    run_decoder_teacher_forced,
    run_encoder,
)
from whisper_sae.whisper.splice import frame_mask


@dataclass
class KLItem:
    """One training utterance: its audio (<= 30 s), and the tokens the decoder is teacher-forced with."""

    id: str
    audio: np.ndarray
    tokens: list[int]
    """Prompt, transcript tokens and the end token."""
    n_prompt: int
    """How many of ``tokens`` are the prompt (the first predicted token follows it)."""
    frames: int
    """Encoder frames holding real audio."""
    text_source: str = "reference"
    """``reference``, ``model`` (Whisper's own transcript, for an utterance without one) or ``none`` (not needed)."""


@dataclass
class KLBatch:
    """A batch of utterances ready for Whisper: features, right-padded token ids and the real positions."""

    items: list[KLItem]
    features: Tensor
    ids: Tensor
    lengths: list[int]
    extra: dict = field(default_factory=dict)

    @property
    def predicting(self) -> Tensor:
        """[B, L] positions whose logits predict a transcript token or the end token (not the prompt)."""
        pos = torch.arange(self.ids.shape[1], device=self.ids.device)[None, :]
        start = torch.tensor([it.n_prompt - 1 for it in self.items], device=self.ids.device)[:, None]
        end = torch.tensor([n - 1 for n in self.lengths], device=self.ids.device)[:, None]
        return (pos >= start) & (pos < end)

    @property
    def targets(self) -> Tensor:
        """The tokens predicted at ``predicting`` positions, in the same (row-major) order."""
        nxt = torch.cat([self.ids[:, 1:], self.ids[:, -1:]], dim=1)
        return nxt[self.predicting]

    @property
    def n_tokens(self) -> int:
        return int(self.predicting.sum())


class SplicedWhisper:
    """Whisper run from one hook to the logits, with a replacement spliced in (see the module docstring)."""

    def __init__(self, lw, hook: str):
        self.lw = lw
        self.hook = HookPoint.parse(hook, lw.config)
        lw.model.requires_grad_(False)  # frozen: the SAE's parameters are the only leaves with a gradient
        lw.model.eval()  # no dropout: the clean and spliced passes must be the same function
        self.core = lw.model.model
        self.param = next(self.core.parameters())

    def prepare(self, items: list[KLItem]) -> KLBatch:
        lengths = [len(it.tokens) for it in items]
        ids = torch.full((len(items), max(lengths)), self.lw.eot_id, dtype=torch.long)
        for row, it in enumerate(items):
            ids[row, : len(it.tokens)] = torch.tensor(it.tokens)
        features = self.lw.log_mel([it.audio for it in items])
        return KLBatch(items, features, ids.to(self.param.device), lengths)

    @torch.no_grad()
    def prefix(self, batch: KLBatch) -> Tensor:
        """Whisper's own activations at the hook, [B, T, d] float32 (all 1500 frames for encoder hooks)."""
        if self.hook.side == "encoder":
            return run_encoder(self.lw, batch.features, [self.hook.name])[self.hook.name].float()
        enc = run_encoder(self.lw, batch.features, ["encoder.out"])["encoder.out"]
        batch.extra["encoder_out"] = enc
        acts = run_decoder_teacher_forced(
            self.lw, enc, [it.tokens for it in batch.items], [self.hook.name], pad_id=self.lw.eot_id
        )[self.hook.name]
        return acts.float()

    def mask(self, batch: KLBatch, acts: Tensor) -> Tensor:
        """[B, T] positions the SAE replaces: real audio frames (encoder) or unpadded tokens (decoder)."""
        n_real = [it.frames for it in batch.items] if self.hook.side == "encoder" else batch.lengths
        return frame_mask(n_real, acts.shape[1]).to(acts.device)

    def hidden(self, batch: KLBatch, acts: Tensor) -> Tensor:
        """The decoder's last hidden state [B, L, d] when the hook's activations are ``acts`` [B, T, d]."""
        acts = acts.to(self.param.dtype)
        decoder = self.core.decoder
        if self.hook.side == "encoder":
            x = acts
            if self.hook.layer is not None:
                for layer in self.core.encoder.layers[self.hook.layer + 1 :]:
                    out = layer(x, None)
                    x = out[0] if isinstance(out, tuple) else out
                x = self.core.encoder.layer_norm(x)
            return decoder(input_ids=batch.ids, encoder_hidden_states=x, use_cache=False).last_hidden_state
        # Decoder hook: the decoder runs whole and the hook's output is swapped for ``acts``; the blocks
        # before the hook build no graph (nothing they touch requires grad).
        with patch(self.lw.model, self.hook.name, lambda _: acts):
            return decoder(
                input_ids=batch.ids,
                encoder_hidden_states=batch.extra["encoder_out"].to(self.param.dtype),
                use_cache=False,
            ).last_hidden_state

    def logits(self, batch: KLBatch, hidden: Tensor) -> Tensor:
        """Logits [n_tokens, vocab] float32 at the predicting positions (the output projection runs on those only)."""
        return self.lw.model.proj_out(hidden[batch.predicting]).float()

    def clean_logits(self, batch: KLBatch, acts: Tensor) -> Tensor:
        with torch.no_grad():
            return self.logits(batch, self.hidden(batch, acts))

    def spliced_logits(self, batch: KLBatch, acts: Tensor, mask: Tensor, rows: Tensor) -> Tensor:
        """Logits with ``rows`` [n_real, d] (e.g. the SAE's reconstruction, with grad) in place of ``acts[mask]``."""
        spliced = acts.clone()
        spliced[mask] = rows.to(spliced.dtype)
        return self.logits(batch, self.hidden(batch, spliced))


def token_kl(clean: Tensor, spliced: Tensor) -> Tensor:
    """Mean over tokens of KL(softmax(clean) || softmax(spliced)), in nats; ``clean`` carries no gradient."""
    if clean.shape != spliced.shape or clean.ndim != 2:
        raise ValueError(
            f"clean and spliced logits must both be [tokens, vocab]; got {tuple(clean.shape)} and "
            f"{tuple(spliced.shape)}"
        )
    if clean.shape[0] == 0:
        raise ValueError("no transcript token to score: every utterance of the batch has an empty token sequence")
    log_p = F.log_softmax(clean.detach().float(), dim=-1)
    log_q = F.log_softmax(spliced.float(), dim=-1)
    return F.kl_div(log_q, log_p, log_target=True, reduction="sum") / clean.shape[0]


def kl_of(runner: SplicedWhisper, sae, items: list[KLItem]) -> float:
    """KL(clean || spliced) per token of an SAE (in its inference mode) on ``items``: a quick check."""
    batch = runner.prepare(items)
    with torch.no_grad():
        acts = runner.prefix(batch)
        mask = runner.mask(batch, acts)
        clean = runner.clean_logits(batch, acts)
        rows = sae.decode(sae.encode(acts[mask].float()))
        return float(token_kl(clean, runner.spliced_logits(batch, acts, mask, rows)))

"""The sparse autoencoder module: one class for every architecture, SAELens' parameter names.

``codes = act((x - b_dec) @ W_enc + b_enc)`` (``- b_dec`` only with ``apply_b_dec_to_input``) and
``x_hat = codes @ W_dec + b_dec``; ``act`` is the architecture's sparsifying non-linearity, and any
parameter beyond these four (a threshold) is added by the architecture (``sae/architectures/``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .architectures import get_architecture
from .config import SAEConfig

# State-dict keys of the original whisper-sae module (nn.Linear encoder and decoder).
ORIGINAL_KEYS = ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias")


class SAEOutput(NamedTuple):
    """What ``SparseAutoencoder.forward`` returns; the order matches the original ``encoded, decoded = sae(x)``."""

    codes: Tensor
    """Feature activations [..., d_sae], zero where a feature is off."""
    x_hat: Tensor
    """Reconstruction [..., d_in] in the input's units."""


class SparseAutoencoder(nn.Module):
    """An SAE over one hook's activations. Build it from an ``SAEConfig``, or as the original did with
    ``SparseAutoencoder(input_dim=384, hidden_dim=1152)`` (ReLU, no ``b_dec`` on the input)."""

    def __init__(self, cfg: SAEConfig | None = None, *, input_dim: int | None = None, hidden_dim: int | None = None):
        super().__init__()
        if cfg is None:
            if input_dim is None or hidden_dim is None:
                raise ValueError("give either an SAEConfig or both input_dim and hidden_dim (the original signature)")
            cfg = SAEConfig(d_in=int(input_dim), d_sae=int(hidden_dim), architecture="relu", apply_b_dec_to_input=False)
        elif input_dim is not None or hidden_dim is not None:
            raise ValueError("give either an SAEConfig or input_dim/hidden_dim, not both")
        self.cfg = cfg
        self.arch = get_architecture(cfg.architecture)
        d_in, d_sae, d_out = cfg.d_in, cfg.d_sae, cfg.out_dim
        # Unit-norm random decoder rows and a tied encoder: the init SAELens, sparsify and OpenAI use.
        w_dec = torch.randn(d_sae, d_out)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        if cfg.kind == "transcoder":  # input and output spaces differ: no tying, unit-norm random columns
            w_enc = torch.randn(d_in, d_sae)
            self.W_enc = nn.Parameter(w_enc / w_enc.norm(dim=0, keepdim=True))
        else:
            self.W_enc = nn.Parameter(w_dec.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(torch.zeros(d_out))
        if cfg.skip:  # SAELens' skip transcoder: W_skip [d_out, d_in], zero at the start
            self.W_skip = nn.Parameter(torch.zeros(d_out, d_in))
        self.arch.init_parameters(self)

    # -- the forward pass -------------------------------------------------------------------------
    def pre_acts(self, x: Tensor) -> Tensor:
        """Encoder pre-activations [..., d_sae] (before the sparsifying non-linearity)."""
        x = x.to(self.W_enc.dtype) if not torch.is_autocast_enabled(x.device.type) else x
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        if x.dim() == 2:  # addmm folds the bias into the matmul: one pass less over [B, d_sae]
            return torch.addmm(self.b_enc, x, self.W_enc)
        return x @ self.W_enc + self.b_enc

    def training_pre_acts(self, x: Tensor) -> Tensor:
        """``pre_acts`` for a training step on rows [B, d_in]: the same function, written as
        x·W_enc + (b_enc − b_dec·W_enc) so that b_dec's gradient comes through a [d_in] vector instead of
        through the centred input. Autograd then skips the input-gradient matmul ([B, d_sae] x [d_sae, d_in]),
        one of the five dense matmuls of a ReLU step (benchmarks/train.py)."""
        if x.dim() != 2 or not self.cfg.apply_b_dec_to_input:
            return self.pre_acts(x)
        x = x.to(self.W_enc.dtype) if not torch.is_autocast_enabled(x.device.type) else x
        return torch.addmm(self.b_enc - self.b_dec @ self.W_enc, x, self.W_enc)

    def get_threshold(self) -> Tensor:
        """Per-feature inference threshold [d_sae] of a threshold architecture (jumprelu, batchtopk)."""
        return self.arch.threshold(self)

    def activate(self, pre: Tensor) -> Tensor:
        """The architecture's non-linearity at inference (batchtopk uses its estimated threshold)."""
        return self.arch.activate(self, pre)

    def encode(self, x: Tensor) -> Tensor:
        """Feature activations [..., d_sae] of raw activations x [..., d_in]."""
        return self.activate(self.pre_acts(x))

    def decode(self, codes: Tensor) -> Tensor:
        """Reconstruction [..., d_in] from feature activations [..., d_sae]."""
        if not torch.is_autocast_enabled(codes.device.type):
            codes = codes.to(self.W_dec.dtype)
        return codes @ self.W_dec + self.b_dec

    def skip_out(self, x: Tensor) -> Tensor | float:
        """A skip transcoder's linear path ``x @ W_skip.T`` (0 without one); part of ``forward``, not of ``decode``."""
        if not self.cfg.skip:
            return 0.0
        x = x.to(self.W_skip.dtype) if not torch.is_autocast_enabled(x.device.type) else x
        return x @ self.W_skip.T

    def forward(self, x: Tensor) -> SAEOutput:
        codes = self.encode(x)
        return SAEOutput(codes=codes, x_hat=self.decode(codes) + self.skip_out(x))

    # -- checks for other stages ------------------------------------------------------------------
    def check_compatible(self, d_model: int, hook_name: str | None = None, model_name: str | None = None) -> None:
        """Raise a ValueError if this SAE cannot read a hook of width ``d_model``; warn on another hook or model."""
        where = f"hook {hook_name!r}" if hook_name else "these activations"
        if int(d_model) != self.cfg.d_in:
            raise ValueError(
                f"this SAE reads activations of width d_in={self.cfg.d_in}"
                f" (trained on {self.cfg.hook_name or 'an unnamed hook'} of {self.cfg.model_name or 'an unnamed model'}),"
                f" but {where} have width {d_model}; use an SAE trained on a model with d_model={d_model}"
            )
        if hook_name and self.cfg.hook_name and hook_name != self.cfg.hook_name:
            warnings.warn(f"SAE trained on hook {self.cfg.hook_name!r} is applied to hook {hook_name!r}", stacklevel=2)
        # A model given by its folder is the same model as its name (the folder's last part).
        if model_name and self.cfg.model_name and _base(model_name) != _base(self.cfg.model_name):
            warnings.warn(f"SAE trained on {self.cfg.model_name!r} is applied to {model_name!r}", stacklevel=2)

    # -- the original whisper-sae state dict ------------------------------------------------------
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Accept our own keys, and the original's ``encoder.*`` / ``decoder.*`` Linear weights."""
        if any(key in state_dict for key in ORIGINAL_KEYS):
            state_dict = self._from_original(state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _from_original(self, state: dict) -> dict:
        missing = [key for key in ORIGINAL_KEYS if key not in state]
        if missing:
            raise ValueError(f"an original whisper-sae state dict needs {', '.join(ORIGINAL_KEYS)}; missing {missing}")
        want = {
            "encoder.weight": (self.cfg.d_sae, self.cfg.d_in),
            "encoder.bias": (self.cfg.d_sae,),
            "decoder.weight": (self.cfg.d_in, self.cfg.d_sae),
            "decoder.bias": (self.cfg.d_in,),
        }
        for key, shape in want.items():
            if tuple(state[key].shape) != shape:
                raise ValueError(
                    f"{key} has shape {list(state[key].shape)} but this SAE (input_dim={self.cfg.d_in}, "
                    f"hidden_dim={self.cfg.d_sae}) needs {list(shape)}; build it with the checkpoint's sizes"
                )
        if self.cfg.architecture != "relu":  # the original whisper-sae trained only ReLU SAEs
            raise ValueError(f"the original checkpoints are ReLU SAEs; this SAE is {self.cfg.architecture!r}")
        w_enc = state["encoder.weight"].T.float()
        b_enc = state["encoder.bias"].float()
        b_dec = state["decoder.bias"].float()
        if self.cfg.apply_b_dec_to_input:
            # (x - b_dec) @ W + b' == x @ W + b  when  b' = b + b_dec @ W: the same function, exactly.
            b_enc = b_enc + b_dec @ w_enc
        return {
            "W_enc": w_enc.contiguous(),
            "b_enc": b_enc,
            "W_dec": state["decoder.weight"].T.float().contiguous(),
            "b_dec": b_dec,
        }

    # -- saving and loading (SAELens layout) --------------------------------------------------------
    def save_pretrained(self, path, **metadata) -> Path:
        from .io import save_pretrained

        return save_pretrained(self, path, **metadata)

    @classmethod
    def from_pretrained(cls, path, *, device: str | torch.device = "cpu") -> SparseAutoencoder:
        """Load an SAE folder, a shipped SAE by name (``"tiny/encoder.out-original"``; ``whisper-sae pretrained
        list``) or one on the Hugging Face Hub (``"hf://ORG/REPO[/SUBDIR]"``)."""
        from .io import load_pretrained

        return load_pretrained(path, device=device)


def _base(spec: str) -> str:
    return Path(str(spec).rstrip("/\\")).name or str(spec)

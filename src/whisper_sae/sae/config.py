"""The configuration of one sparse autoencoder: its shape, its architecture and what it was trained on.

What an architecture needs (k or not, extra parameters) is asked of its module in ``sae/architectures/``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .architectures import check_name, get_architecture


@dataclass
class SAEConfig:
    """Everything needed to rebuild an SAE's forward pass, plus where its inputs come from."""

    d_in: int
    """Width of the activations the SAE reads (Whisper's d_model at the hook)."""
    d_sae: int
    """Number of features (latents)."""
    architecture: str = "relu"
    """A registered architecture (``sae/architectures/``): ``relu`` (ReLU + L1), ``topk``, ``batchtopk``, ``jumprelu``."""
    k: int | None = None
    """Active features per row for ``topk``; mean active features per row while training ``batchtopk``."""
    apply_b_dec_to_input: bool = True
    """Subtract ``b_dec`` from the input before encoding (SAELens' convention; the original SAE did not)."""
    hook_name: str | None = None
    """Hook point the activations came from, e.g. ``encoder.out``."""
    model_name: str | None = None
    """Whisper model the activations came from, e.g. ``tiny.en``."""
    activation_scale: float = 1.0
    """Factor the training inputs were multiplied by; already folded into the saved weights (informational)."""
    model_spec: str | None = None
    """What ``load_whisper`` was given to make the activations (e.g. ``tiny.en`` or a path)."""
    window_mode: str | None = None
    """How the store cut audio into 30-s windows (``padded`` or ``packed``)."""

    def __post_init__(self) -> None:
        check_name(self.architecture)
        for name in ("d_in", "d_sae"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        get_architecture(self.architecture).check_config(self)
        if not self.activation_scale > 0:
            raise ValueError(f"activation_scale must be positive, got {self.activation_scale!r}")

    def to_dict(self) -> dict:
        return asdict(self)

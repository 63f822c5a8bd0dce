"""The configuration of one sparse autoencoder: its shape, its architecture and what it was trained on."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ARCHITECTURES = ("relu", "topk", "batchtopk", "jumprelu")


@dataclass
class SAEConfig:
    """Everything needed to rebuild an SAE's forward pass, plus where its inputs come from."""

    d_in: int
    """Width of the activations the SAE reads (Whisper's d_model at the hook)."""
    d_sae: int
    """Number of features (latents)."""
    architecture: str = "relu"
    """One of ``relu`` (ReLU + L1), ``topk``, ``batchtopk`` (a threshold at inference), ``jumprelu``."""
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
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture {self.architecture!r} is not known; valid architectures are {', '.join(ARCHITECTURES)}"
            )
        for name in ("d_in", "d_sae"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.architecture in ("topk", "batchtopk"):
            if not isinstance(self.k, int) or not 0 < self.k <= self.d_sae:
                raise ValueError(
                    f"architecture {self.architecture!r} needs k, an integer in 1..d_sae={self.d_sae}; got k={self.k!r}"
                )
        elif self.k is not None:
            raise ValueError(f"k={self.k} is only meaningful for topk or batchtopk, not {self.architecture!r}")
        if not self.activation_scale > 0:
            raise ValueError(f"activation_scale must be positive, got {self.activation_scale!r}")

    def to_dict(self) -> dict:
        return asdict(self)

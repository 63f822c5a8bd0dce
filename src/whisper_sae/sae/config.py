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
    hook_name_out: str | None = None
    """Transcoder: the hook it writes (e.g. ``encoder.blocks.2.mlp_out``), reading ``hook_name``
    (``encoder.blocks.2.mlp_in``); None for an SAE, which reconstructs its own input."""
    d_out: int | None = None
    """Transcoder: width of ``hook_name_out`` (default ``d_in``)."""
    skip: bool = False
    """Transcoder: a linear skip connection ``x @ W_skip.T`` ([d_out, d_in]) added to the output."""
    hook_names: list[str] | None = None
    """Crosscoder: the hooks (e.g. two encoder blocks) whose activations, concatenated in this order,
    it reads and reconstructs; ``d_in`` is their summed width and ``hook_name`` the first of them."""

    def __post_init__(self) -> None:
        check_name(self.architecture)
        for name in ("d_in", "d_sae"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        get_architecture(self.architecture).check_config(self)
        if not self.activation_scale > 0:
            raise ValueError(f"activation_scale must be positive, got {self.activation_scale!r}")
        if self.hook_name_out is not None and self.hook_names:
            raise ValueError("a dictionary is a transcoder (hook_name_out) or a crosscoder (hook_names), not both")
        if self.hook_name_out is not None and self.apply_b_dec_to_input:
            raise ValueError(
                "a transcoder's b_dec lives in its output space; set apply_b_dec_to_input=False (it reads "
                f"{self.hook_name} and writes {self.hook_name_out})"
            )
        if (self.d_out is not None or self.skip) and self.hook_name_out is None:
            raise ValueError("d_out and skip are transcoder settings: give hook_name_out (the hook it writes)")
        if self.d_out is not None and (not isinstance(self.d_out, int) or self.d_out <= 0):
            raise ValueError(f"d_out must be a positive integer, got {self.d_out!r}")
        if self.hook_names is not None:
            self.hook_names = list(self.hook_names)
            if len(self.hook_names) < 2 or len(set(self.hook_names)) != len(self.hook_names):
                raise ValueError(f"a crosscoder reads two or more different hooks, got {self.hook_names}")
            if self.hook_name is None:
                self.hook_name = self.hook_names[0]
            elif self.hook_name != self.hook_names[0]:
                raise ValueError(
                    f"a crosscoder's hook_name is its first hook {self.hook_names[0]!r}, got {self.hook_name!r}"
                )
            if self.d_in % len(self.hook_names):
                raise ValueError(f"d_in={self.d_in} is not a multiple of the {len(self.hook_names)} hooks' width")

    @property
    def kind(self) -> str:
        """``sae``, ``transcoder`` (reads one hook, writes another) or ``crosscoder`` (several hooks)."""
        return "transcoder" if self.hook_name_out else "crosscoder" if self.hook_names else "sae"

    @property
    def input_hooks(self) -> list[str]:
        """The hooks read, in the order their activations are concatenated."""
        return list(self.hook_names) if self.hook_names else [self.hook_name]

    @property
    def output_hooks(self) -> list[str]:
        """The hooks written (reconstructed)."""
        return [self.hook_name_out] if self.hook_name_out else self.input_hooks

    @property
    def out_dim(self) -> int:
        """Width of the reconstruction."""
        return self.d_out if self.d_out is not None else self.d_in

    def to_dict(self) -> dict:
        return asdict(self)

"""Numbers that say how faithful an SAE is: word error rate and reconstruction statistics.

Everything here works on plain strings and tensors, so it is tested without a Whisper model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor


@lru_cache(maxsize=1)
def _english_normalizer():
    # Whisper's own English normaliser (spelling, numbers, contractions, punctuation), as packaged
    # by whisper-normalizer; built once because it compiles many regular expressions.
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize_text(text: str | None) -> str:
    """Normalise a transcript the way Whisper's English WER is reported (lower case, no punctuation,
    standard spellings); ``None`` becomes the empty string."""
    if not text:
        return ""
    return " ".join(_english_normalizer()(text).split())


@dataclass(frozen=True)
class WordErrors:
    """Word-level edit counts of one hypothesis against one reference (after normalisation)."""

    substitutions: int
    deletions: int
    insertions: int
    ref_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Errors per reference word; an empty reference gives 0 with no errors and inf otherwise."""
        if self.ref_words == 0:
            return 0.0 if self.errors == 0 else math.inf
        return self.errors / self.ref_words


def word_errors(reference: str | None, hypothesis: str | None, *, normalize: bool = True) -> WordErrors:
    """Count word substitutions, deletions and insertions of ``hypothesis`` against ``reference``.

    Empty strings on either side are fine: an empty reference makes every hypothesis word an
    insertion, an empty hypothesis makes every reference word a deletion.
    """
    ref = normalize_text(reference) if normalize else " ".join((reference or "").split())
    hyp = normalize_text(hypothesis) if normalize else " ".join((hypothesis or "").split())
    ref_words, hyp_words = ref.split(), hyp.split()
    if not ref_words or not hyp_words:
        # jiwer's alignment needs words on both sides to be meaningful; these cases are plain counts.
        return WordErrors(0, len(ref_words), len(hyp_words), len(ref_words))
    import jiwer

    out = jiwer.process_words(ref, hyp)
    return WordErrors(out.substitutions, out.deletions, out.insertions, len(ref_words))


def corpus_wer(references: list[str | None], hypotheses: list[str | None]) -> float:
    """Word error rate over a corpus: all errors over all reference words (not a mean of per-utterance
    rates). ``nan`` when the references hold no words at all."""
    if len(references) != len(hypotheses):
        raise ValueError(
            f"corpus_wer got {len(references)} references and {len(hypotheses)} hypotheses; "
            "it needs one hypothesis per reference"
        )
    counts = [word_errors(r, h) for r, h in zip(references, hypotheses)]
    n_ref = sum(c.ref_words for c in counts)
    if n_ref == 0:
        return math.nan
    return sum(c.errors for c in counts) / n_ref


@dataclass
class ReconstructionMetrics:
    """Reconstruction quality of an SAE over a set of activation rows (frames or tokens)."""

    n_rows: int
    mse: float  # mean over rows and dimensions of (x - x_hat)^2
    explained_variance: float  # 1 - FVU; the variance is that of x over the same rows
    fvu: float  # sum (x - x_hat)^2 / sum (x - mean(x))^2
    cosine: float  # mean over rows of cos(x, x_hat)
    l0: float  # mean number of nonzero codes per row
    dead_fraction: float  # features that never fired on these rows
    dense_fraction: float  # features that fired on more than `dense_threshold` of the rows
    dense_threshold: float

    def to_dict(self) -> dict:
        return asdict(self)


class ReconstructionAccumulator:
    """Accumulates reconstruction statistics batch by batch, so a held-out set need not fit in memory.

    Sums are kept in float64, and the variance is taken around a shift (the first batch's mean) so
    that activations with a large common offset do not lose precision in sum(x^2) - n·mean^2.
    """

    def __init__(self, d_sae: int, *, dense_threshold: float = 0.1):
        self.d_sae = d_sae
        self.dense_threshold = dense_threshold
        self.n = 0
        self._shift: Tensor | None = None
        self._sum = self._sumsq = None  # [d] sums of (x - shift) and its square
        self._sse = 0.0
        self._cos = 0.0
        self._l0 = 0.0
        self.fire_counts = torch.zeros(d_sae, dtype=torch.float64)

    def update(self, x: Tensor, x_hat: Tensor, codes: Tensor) -> None:
        """Add rows: ``x`` and ``x_hat`` [n, d_in], ``codes`` [n, d_sae]."""
        if x.shape != x_hat.shape or x.ndim != 2:
            raise ValueError(f"x and x_hat must both be [rows, d_in]; got {tuple(x.shape)} and {tuple(x_hat.shape)}")
        if codes.ndim != 2 or codes.shape != (x.shape[0], self.d_sae):
            raise ValueError(f"codes must be [rows, d_sae] = [{x.shape[0]}, {self.d_sae}]; got {tuple(codes.shape)}")
        if x.shape[0] == 0:
            return
        x, x_hat = x.detach().double(), x_hat.detach().double()
        if self._shift is None:
            self._shift = x.mean(0)
            self._sum = torch.zeros_like(self._shift)
            self._sumsq = torch.zeros_like(self._shift)
        centred = x - self._shift
        self._sum += centred.sum(0)
        self._sumsq += (centred * centred).sum(0)
        self._sse += float(((x - x_hat) ** 2).sum())
        self._cos += float(torch.nn.functional.cosine_similarity(x, x_hat, dim=1, eps=1e-12).sum())
        fired = codes.detach() != 0
        self._l0 += float(fired.sum())
        self.fire_counts += fired.sum(0).double()
        self.n += x.shape[0]

    @property
    def firing_frequency(self) -> Tensor:
        """Fraction of rows on which each feature fired, [d_sae]."""
        return self.fire_counts / max(self.n, 1)

    def result(self) -> ReconstructionMetrics:
        if self.n == 0:
            raise ValueError("no rows were evaluated: the held-out set gave no activations to reconstruct")
        d = self._sum.numel()
        total_var = float((self._sumsq - self._sum**2 / self.n).sum())
        fvu = self._sse / total_var if total_var > 0 else math.nan
        freq = self.firing_frequency
        return ReconstructionMetrics(
            n_rows=self.n,
            mse=self._sse / (self.n * d),
            explained_variance=1.0 - fvu,
            fvu=fvu,
            cosine=self._cos / self.n,
            l0=self._l0 / self.n,
            dead_fraction=float((freq == 0).double().mean()),
            dense_fraction=float((freq > self.dense_threshold).double().mean()),
            dense_threshold=self.dense_threshold,
        )


def reconstruction_metrics(
    x: Tensor, x_hat: Tensor, codes: Tensor, *, dense_threshold: float = 0.1
) -> ReconstructionMetrics:
    """Reconstruction statistics of one set of rows held in memory (see ``ReconstructionAccumulator``)."""
    acc = ReconstructionAccumulator(codes.shape[-1], dense_threshold=dense_threshold)
    acc.update(x, x_hat, codes)
    return acc.result()


def plot_feature_density(frequency: Tensor, path: str | Path, *, title: str = "") -> Path:
    """Write the histogram of log10 firing frequency per feature as a PNG; dead features (frequency
    0, no logarithm) are counted in the title instead of drawn."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and in CI
    import matplotlib.pyplot as plt

    freq = frequency.detach().double().cpu()
    alive = freq[freq > 0]
    n_dead = int((freq == 0).sum())
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if alive.numel():
        ax.hist(torch.log10(alive).numpy(), bins=50, color="#3b6ea8")
    ax.set_xlabel("log10 firing frequency (fraction of evaluated rows)")
    ax.set_ylabel("features")
    head = f"{title} — " if title else ""
    ax.set_title(f"{head}{freq.numel()} features, {n_dead} dead", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def ce_recovered(ce_clean: float, ce_spliced: float, ce_ablated: float) -> float:
    """Fraction of the loss gap closed by the SAE: (CE_ablated − CE_spliced) / (CE_ablated − CE_clean).

    1 means the spliced model is as good as the clean one, 0 as bad as the ablated one. ``nan`` when
    the ablation does not raise the loss (the ratio would mean nothing).
    """
    gap = ce_ablated - ce_clean
    if not gap > 0:
        return math.nan
    return (ce_ablated - ce_spliced) / gap

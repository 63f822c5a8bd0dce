"""Layer lenses on Whisper: at which depth is the transcript already there?

Encoder lens. Whisper's decoder reads the encoder's output, ``encoder.layer_norm(x_L)`` with ``x_L`` the
residual stream after the last block. The lens hands it ``encoder.layer_norm(x_i)`` of an earlier block
``i`` instead and decodes greedily, as ``LoadedWhisper.transcribe`` does: the WER per block says from
which depth on the decoder can read the words. The final norm is applied because the residual stream's
scale grows with depth and the decoder's cross-attention only ever saw normalised inputs. At the last
block the lens *is* Whisper; ``LensResult.checks`` records that the two transcripts agree.

Logit lens. Each decoder block's residual, through the decoder's final layer norm and the output
projection, gives next-token logits. Teacher-forced on the reference transcript (sentence-cased as
Whisper writes, see ``activations.decoder_text.as_whisper_writes``), per block: how often the top token
is the reference's next token, and the cross-entropy of the reference tokens and the end token. The
last block's lens is Whisper's own logits (also checked).

Both run on speech with reference transcripts, one 30-s window per utterance; others are skipped and
listed. A shallow layer's transcript often repeats itself until the token limit, so each batch stops
at twice its longest reference plus 8 tokens (as ``evaluate`` does), unless ``max_new_tokens`` is given.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from whisper_sae.activations.decoder_text import as_whisper_writes
from whisper_sae.artifacts import open_corpus, open_model
from whisper_sae.audio.constants import WINDOW_SECONDS
from whisper_sae.evaluate.metrics import word_errors
from whisper_sae.whisper.hooks import _core, run_decoder_teacher_forced, run_encoder


@dataclass
class LensItem:
    id: str
    audio: np.ndarray
    text: str


def lens_items(corpus, max_utterances: int | None = None) -> tuple[list[LensItem], list[dict], str]:
    """(utterances the lenses can use, skipped ones with the reason, the corpus spec)."""
    if max_utterances is not None and max_utterances < 1:
        raise ValueError(f"max_utterances must be at least 1, got {max_utterances}")
    utterances, spec = open_corpus(corpus, max_utterances)
    items, skipped = [], []
    for utt in utterances:
        if not (utt.text or "").strip():
            skipped.append({"id": utt.id, "reason": "no reference transcript"})
        elif utt.duration > WINDOW_SECONDS:
            skipped.append({"id": utt.id, "reason": f"{utt.duration:.1f} s is longer than one 30-s window"})
        else:
            items.append(LensItem(utt.id, np.asarray(utt.audio, dtype=np.float32), utt.text))
    skipped += [{"id": s.get("id"), "reason": s.get("reason")} for s in getattr(utterances, "skipped", [])]
    if not items:
        raise ValueError(
            f"corpus {spec} has no utterance with a reference transcript of at most {WINDOW_SECONDS} s; "
            "the lenses need transcribed speech (e.g. a LibriSpeech-layout folder)"
        )
    return items, skipped, spec


@dataclass
class LensResult:
    """Per-layer figures of the encoder lens (``encoder``: wer, errors, ref_words, empty) and the logit
    lens (``decoder``: top1, ce in nats per token, n_tokens), with Whisper's own figures in ``plain``."""

    meta: dict
    n_utterances: int
    plain: dict
    encoder: list[dict]
    decoder: list[dict]
    checks: dict
    utterances: list[dict] = field(repr=False)
    skipped: list[dict] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self, *, with_utterances: bool = True) -> dict:
        data = asdict(self)
        if not with_utterances:
            del data["utterances"]
        return _json_safe(data)

    def table(self, examples: int = 2) -> str:
        """Markdown: WER per encoder layer, top-1 / CE per decoder block, the checks, example transcripts."""
        lines = [
            "| encoder lens at | WER | errors / words | median utterance WER | empty transcripts |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        p = self.plain
        for row in [*self.encoder, {"hook": "Whisper (encoder.out)"} | p]:
            lines.append(
                f"| {row['hook']} | {_pct(row['wer'])} | {row['errors']} / {row['ref_words']} | "
                f"{_pct(row['median_utterance_wer'])} | {row['empty']} |"
            )
        if self.decoder:
            lines += ["", "| logit lens at | top-1 accuracy | CE (nats/token) |", "| --- | ---: | ---: |"]
            for row in self.decoder:
                lines.append(f"| {row['hook']} | {row['top1']:.1%} | {row['ce']:.3f} |")
            lines.append(f"| Whisper (logits) | {p['top1']:.1%} | {p['ce']:.3f} |")
        c = self.checks
        lines += [
            "",
            f"Checks: last encoder block's lens transcripts equal Whisper's for "
            f"{c['last_layer_same_transcripts']} of {self.n_utterances} utterances"
            + (
                f"; last decoder block's lens logits differ from Whisper's by at most "
                f"{c['logit_lens_max_abs_diff']:.2e}."
                if self.decoder
                else "."
            ),
        ]
        for utt in self.utterances[:examples]:
            lines += [
                "",
                f'Example {utt["id"]}: reference "{utt["reference"]}"',
                "",
                "| lens at | transcript |",
                "| --- | --- |",
            ]
            for row, text in zip(self.encoder, utt["layers"]):
                lines.append(f"| {row['hook']} | {_cell(text)} |")
            lines.append(f"| Whisper | {_cell(utt['plain'])} |")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """WER per encoder layer (left) and the logit lens's top-1 accuracy and CE per decoder block (right)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        panels = 2 if self.decoder else 1
        fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
        ax = axes[0][0]
        layers = [row["layer"] for row in self.encoder]
        wers = [100 * row["wer"] for row in self.encoder]
        top = min(max(wers + [100 * self.plain["wer"], 10]) * 1.1, 150)
        ax.plot(layers, [min(w, top) for w in wers], "o-", label="encoder lens")
        for x, w in zip(layers, wers):
            ax.annotate(
                f"{w:.0f}%" if w >= 10 else f"{w:.1f}%",
                (x, min(w, top)),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
        ax.axhline(100 * self.plain["wer"], color="grey", ls="--", label="Whisper")
        ax.set(
            xlabel="encoder block",
            ylabel="WER (%)",
            ylim=(0, top * 1.08),
            xticks=layers,
            title=f"{self.meta['model']}: encoder lens",
        )
        ax.legend(fontsize=8)
        if self.decoder:
            ax = axes[0][1]
            blocks = [row["layer"] for row in self.decoder]
            ax.plot(blocks, [100 * row["top1"] for row in self.decoder], "o-", color="tab:green")
            ax.set(
                xlabel="decoder block",
                ylabel="top-1 accuracy (%)",
                ylim=(0, 100),
                xticks=blocks,
                title=f"{self.meta['model']}: logit lens",
            )
            twin = ax.twinx()
            twin.plot(blocks, [row["ce"] for row in self.decoder], "s--", color="tab:red")
            twin.set_ylabel("CE (nats/token)", color="tab:red")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    def write(self, out: str | Path) -> dict[str, str]:
        """lens.json (with every transcript), lens.md and lens.png in folder ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.files = {"json": str(out / "lens.json"), "markdown": str(out / "lens.md"), "plot": str(out / "lens.png")}
        self.plot(out / "lens.png")
        m = self.meta
        header = (
            f"# Layer lenses: {m['model']} on {m['corpus']}\n\n{self.n_utterances} utterances "
            f"({m['seconds']:.0f} s), {len(self.skipped)} skipped; greedy decoding, "
            f"{m['max_new_tokens']}.\n\n![lens](lens.png)\n\n"
        )
        Path(self.files["markdown"]).write_text(header + self.table() + "\n")
        Path(self.files["json"]).write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return self.files


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _cell(text: str, limit: int = 120) -> str:
    text = text.replace("|", "/").replace("\n", " ")
    return (text[:limit] + "…") if len(text) > limit else (text or "(empty)")


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class _Tally:
    """Word errors of one transcript source, and the logit figures of one logit source."""

    def __init__(self):
        self.errors = self.ref_words = self.empty = 0
        self.correct = self.n_tokens = 0
        self.nll = 0.0

    def words(self, reference: str, hypothesis: str) -> float:
        counts = word_errors(reference, hypothesis)
        self.errors += counts.errors
        self.ref_words += counts.ref_words
        self.empty += not hypothesis.strip()
        return counts.wer

    def logits(self, logits: torch.Tensor, ids: torch.Tensor, lengths: list[int], n_prompt: int) -> None:
        for row, length in enumerate(lengths):
            # position p predicts token p + 1; the first predicted token follows the prompt
            pred, target = logits[row, n_prompt - 1 : length - 1].float(), ids[row, n_prompt:length]
            self.correct += int((pred.argmax(-1) == target).sum())
            self.nll += float(torch.nn.functional.cross_entropy(pred, target, reduction="sum"))
            self.n_tokens += int(target.numel())

    def wer_row(self) -> dict:
        wer = self.errors / self.ref_words if self.ref_words else math.nan
        return {"wer": wer, "errors": self.errors, "ref_words": self.ref_words, "empty": self.empty}

    def logit_row(self) -> dict:
        n = max(self.n_tokens, 1)
        return {"top1": self.correct / n, "ce": self.nll / n, "n_tokens": self.n_tokens}


def encoder_lens(
    model,
    corpus,
    *,
    max_utterances: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    logit_lens: bool = True,
    device=None,
    out: str | Path | None = None,
    progress: bool = False,
) -> LensResult:
    """The encoder lens (and, with ``logit_lens``, the decoder's logit lens) of ``model`` (a spec or a
    ``LoadedWhisper``) on ``corpus`` (a spec or utterances with transcripts); see the module docstring.
    With ``out``, writes lens.json, lens.md and lens.png there."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    items, skipped, spec = lens_items(corpus, max_utterances)  # a bad corpus fails before the model loads
    lw = open_model(model, device=device)
    n_enc, n_dec = lw.n_encoder_layers, lw.n_decoder_layers
    core = _core(lw)
    prompt = list(lw.prompt_ids)
    limit = lw.config.max_target_positions - len(prompt)
    plain, enc = _Tally(), [_Tally() for _ in range(n_enc)]
    dec = [_Tally() for _ in range(n_dec)] if logit_lens else []
    rows, same, max_diff = [], 0, 0.0

    def text(seq: list[int]) -> str:
        return lw.tokenizer.decode(seq, skip_special_tokens=True).strip()

    starts = range(0, len(items), batch_size)
    for start in tqdm(starts, desc="lens", unit="batch", disable=not progress):
        batch = items[start : start + batch_size]
        seqs = [prompt + lw.text_tokens(as_whisper_writes(it.text)) + [lw.eot_id] for it in batch]
        budget = min(max_new_tokens or 2 * (max(map(len, seqs)) - len(prompt)) + 8, limit)
        features = lw.log_mel([it.audio for it in batch])
        acts = run_encoder(lw, features, [f"encoder.blocks.{i}" for i in range(n_enc)] + ["encoder.out"])
        whisper = [text(s) for s in lw.greedy_tokens(features, prompt, budget)]
        layers = []
        with torch.no_grad():
            for i in range(n_enc):
                hidden = core.encoder.layer_norm(acts[f"encoder.blocks.{i}"].to(lw.model.dtype))
                layers.append([text(s) for s in lw.greedy_from_encoder(hidden, prompt, budget)])
        for j, it in enumerate(batch):
            row = {
                "id": it.id,
                "reference": it.text,
                "plain": whisper[j],
                "plain_wer": plain.words(it.text, whisper[j]),
                "layers": [layers[i][j] for i in range(n_enc)],
                "layer_wer": [enc[i].words(it.text, layers[i][j]) for i in range(n_enc)],
            }
            same += row["layers"][-1] == row["plain"]
            rows.append(row)
        if logit_lens:
            ids = torch.tensor([s + [lw.eot_id] * (max(map(len, seqs)) - len(s)) for s in seqs], device=lw.device)
            lengths = [len(s) for s in seqs]
            hooks = [f"decoder.blocks.{i}" for i in range(n_dec)]
            forced = run_decoder_teacher_forced(lw, acts["encoder.out"], seqs, hooks, return_logits=True)
            plain.logits(forced["logits"], ids, lengths, len(prompt))
            with torch.no_grad():
                for i in range(n_dec):
                    lens_logits = lw.model.proj_out(core.decoder.layer_norm(forced[hooks[i]]))
                    dec[i].logits(lens_logits, ids, lengths, len(prompt))
                max_diff = max(max_diff, float((lens_logits - forced["logits"]).abs().max()))

    # A shallow layer's transcript often loops until the token limit: its insertions can push the pooled
    # WER past 100 % although its start is readable. The median per-utterance WER is less swayed by that.
    def median(values) -> float:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.median(finite)) if finite else math.nan

    plain_row = plain.wer_row() | (plain.logit_row() if logit_lens else {})
    plain_row["median_utterance_wer"] = median(r["plain_wer"] for r in rows)
    result = LensResult(
        meta={
            "model": lw.name,
            "spec": lw.spec,
            "corpus": spec,
            "n_encoder_layers": n_enc,
            "n_decoder_layers": n_dec,
            "seconds": sum(len(it.audio) for it in items) / 16000,
            "device": str(lw.device),
            "max_new_tokens": (
                f"at most {max_new_tokens} new tokens"
                if max_new_tokens
                else "at most twice the batch's longest reference + 8 new tokens"
            ),
        },
        n_utterances=len(items),
        plain=plain_row,
        encoder=[
            {"layer": i, "hook": f"encoder.blocks.{i}"}
            | t.wer_row()
            | {"median_utterance_wer": median(r["layer_wer"][i] for r in rows)}
            for i, t in enumerate(enc)
        ],
        decoder=[{"layer": i, "hook": f"decoder.blocks.{i}"} | t.logit_row() for i, t in enumerate(dec)],
        checks={"last_layer_same_transcripts": same, "logit_lens_max_abs_diff": max_diff if logit_lens else None},
        utterances=rows,
        skipped=skipped,
    )
    if out is not None:
        result.write(out)
    return result

"""Attribution: which SAE features, at which times, push Whisper toward one token of its transcript.

The SAE is spliced into Whisper at its hook with its error term kept (``x = decode(codes) + error``, so
the model computes exactly what it computes without the SAE), the codes made leaves of the graph, and
the token's logit is back-propagated once: the attribution of feature f at frame t is
``codes[t, f] * d logit / d codes[t, f]`` (gradient × activation, the first-order estimate of what
removing that entry would do: attribution patching). Per frame, the features' attributions plus the
error term's and the decoder bias's add up to the plain gradient × activation of the hook.

The estimate is linear; ``ablation_check`` measures how well it predicts real ablations (the feature
removed on every frame, or at one frame, with the error term kept, as ``analysis.interventions`` does),
and compares ablating the top-k attributed features with ablating k random active ones.

The transcript is the model's own greedy one unless a reference ``text`` is given (teacher forcing);
the token is chosen by its index among the text tokens or by a word (its first token).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from whisper_sae.analysis.interventions import ablate_rows_fn
from whisper_sae.audio.constants import FRAME_SECONDS, SAMPLE_RATE, WINDOW_SECONDS
from whisper_sae.whisper import HookPoint, frames_for_duration, patch
from whisper_sae.whisper.splice import frame_mask, splice_fn


@dataclass
class TokenChoice:
    """The transcript as token ids (prompt, text, end) and the position of the token attributed."""

    ids: list[int]
    n_prompt: int
    position: int
    """Index in ``ids`` of the attributed token; its logit is read at ``position - 1``."""
    pieces: list[str]
    """Each text token decoded on its own."""

    @property
    def token_id(self) -> int:
        return self.ids[self.position]

    @property
    def index(self) -> int:
        """Index of the token among the text tokens."""
        return self.position - self.n_prompt


def _words_of(pieces: list[str]) -> list[int]:
    """For each token piece, the index of the word it belongs to (a piece starting with a space starts one)."""
    words, current = [], -1
    for i, piece in enumerate(pieces):
        if i == 0 or piece.startswith(" ") or current < 0:
            current += 1
        words.append(current)
    return words


def _norm(word: str) -> str:
    return re.sub(r"[^\w']+", "", word.lower()).strip("'")


def choose_token(lw, text_ids: list[int], *, token: int | None = None, word: str | None = None) -> TokenChoice:
    """The token to attribute: ``token`` (index among the text tokens; negative counts from the end,
    ``len`` means the end token) or the first token of ``word`` (first occurrence, case and punctuation
    ignored). Neither: the first text token."""
    if token is not None and word is not None:
        raise ValueError("give token or word, not both")
    prompt = list(lw.prompt_ids)
    ids = prompt + list(text_ids) + [lw.eot_id]
    pieces = [lw.tokenizer.decode([t]) for t in text_ids]
    n = len(text_ids)
    if word is not None:
        wanted = _norm(word)
        if not wanted:
            raise ValueError(f"word {word!r} has no letters or digits to look for")
        word_of = _words_of(pieces)
        words: dict[int, str] = {}
        for piece, w in zip(pieces, word_of):
            words[w] = words.get(w, "") + piece
        hits = [w for w in sorted(words) if _norm(words[w]) == wanted]
        if not hits:
            shown = " ".join(_norm(words[w]) for w in sorted(words)) or "(empty)"
            raise ValueError(f"word {word!r} is not in the transcript; its words are: {shown}")
        index = word_of.index(hits[0])
    else:
        index = 0 if token is None else int(token)
        if index < 0:
            index += n
        if not 0 <= index <= n:
            raise ValueError(
                f"token {token} is out of range: the transcript has {n} text tokens (0..{n - 1}, {n} for the end token)"
            )
    return TokenChoice(ids=ids, n_prompt=len(prompt), position=len(prompt) + index, pieces=pieces)


def _token_text(lw, choice: TokenChoice) -> str:
    return "<|endoftext|>" if choice.index == len(choice.pieces) else choice.pieces[choice.index]


class _Splice:
    """The SAE spliced at its hook with its error term kept, codes as graph leaves: ``fn`` for ``patch``."""

    def __init__(self, sae, mask: Tensor | None):
        self.sae, self.mask = sae, mask
        self.codes: Tensor | None = None
        self.x: Tensor | None = None
        self.error: Tensor | None = None
        self.out: Tensor | None = None

    def transform(self, x: Tensor) -> Tensor:
        x32 = x.detach().float()
        with torch.no_grad():
            codes = self.sae.encode(x32)
        codes.requires_grad_(True)
        x_hat = self.sae.decode(codes)
        error = (x32 - x_hat).detach()
        out = x_hat + error
        out.retain_grad()
        self.codes, self.x, self.error, self.out = codes, x32, error, out
        return out

    def fn(self):
        return splice_fn(self.transform, self.mask)


@dataclass
class SAEAttribution:
    """Attributions of one SAE at its hook: rows are real frames (encoder) or token positions (decoder)."""

    hook: str
    side: str
    scores: np.ndarray
    """[rows, d_sae] gradient × activation of each feature at each row."""
    codes: np.ndarray
    """[rows, d_sae] the features' activations."""
    error: np.ndarray
    """[rows] the error term's attribution (gradient · error)."""
    bias: np.ndarray
    """[rows] the decoder bias's attribution (gradient · b_dec)."""
    total: np.ndarray
    """[rows] plain gradient × activation of the hook (= features + error + bias)."""

    def top(self, n: int = 20, labels=None) -> list[dict]:
        """The ``n`` (feature, row) entries of largest |attribution|, with time (encoder) and label."""
        flat = np.abs(self.scores).ravel()
        n = min(n, int((flat > 0).sum()))
        order = np.argsort(-flat, kind="stable")[:n]
        rows = []
        for idx in order:
            r, f = divmod(int(idx), self.scores.shape[1])
            rows.append(self._row(f, r, labels))
        return rows

    def by_feature(self, n: int = 20, labels=None) -> list[dict]:
        """Features ranked by |attribution summed over rows| (what removing the feature everywhere estimates)."""
        summed = self.scores.sum(0)
        active = (self.codes > 0).any(0)
        order = [int(f) for f in np.argsort(-np.abs(summed), kind="stable") if active[f]][:n]
        out = []
        for f in order:
            peak = int(np.argmax(np.abs(self.scores[:, f])))
            row = {
                "feature": f,
                "score": float(summed[f]),
                "peak_row": peak,
                "active_rows": int((self.codes[:, f] > 0).sum()),
            }
            if self.side == "encoder":
                row["peak_time"] = round((peak + 0.5) * FRAME_SECONDS, 3)
            row.update(_label(labels, f))
            out.append(row)
        return out

    def _row(self, f: int, r: int, labels) -> dict:
        row = {"feature": f, "row": r, "score": float(self.scores[r, f]), "activation": float(self.codes[r, f])}
        if self.side == "encoder":
            row["time"] = round((r + 0.5) * FRAME_SECONDS, 3)
        row.update(_label(labels, f))
        return row


def _label(labels, feature: int) -> dict:
    if labels is None:
        return {}
    out = {}
    for kind in ("phone", "word"):
        name, f1 = labels.label(feature, kind)
        if name is not None:
            out[kind] = name
            out[f"{kind}_f1"] = round(f1, 3)
    return out


@dataclass
class Attribution:
    """The attribution of one token's logit to encoder SAE features (and decoder SAE features)."""

    meta: dict
    encoder: SAEAttribution
    decoder: SAEAttribution | None = None
    transcript_tokens: list[str] = field(default_factory=list)
    mel: np.ndarray | None = field(default=None, repr=False)
    labels: object = field(default=None, repr=False)

    def to_dict(self, n: int = 20) -> dict:
        enc = self.encoder
        doc = {
            **self.meta,
            "transcript_tokens": self.transcript_tokens,
            "encoder": {
                "hook": enc.hook,
                "top_entries": self.encoder.top(n, self.labels),
                "top_features": self.encoder.by_feature(n, self.labels),
                "sum_features": float(enc.scores.sum()),
                "sum_error": float(enc.error.sum()),
                "sum_bias": float(enc.bias.sum()),
                "sum_total": float(enc.total.sum()),
                "per_frame_features": [round(float(v), 6) for v in enc.scores.sum(1)],
                "per_frame_error": [round(float(v), 6) for v in enc.error],
            },
        }
        if self.decoder is not None:
            dec = self.decoder
            # The token's own position (where its logit is read) first: its active decoder features.
            pos = self.meta["position"] - 1
            active = np.nonzero(dec.codes[pos] > 0)[0]
            order = active[np.argsort(-np.abs(dec.scores[pos, active]), kind="stable")][:n]
            doc["decoder"] = {
                "hook": dec.hook,
                "position": pos,
                "features_at_token": [
                    {"feature": int(f), "activation": float(dec.codes[pos, f]), "score": float(dec.scores[pos, f])}
                    for f in order
                ],
                "top_entries": dec.top(n),
                "sum_features": float(dec.scores.sum()),
                "sum_error": float(dec.error.sum()),
            }
        return doc

    def write(self, out, n: int = 20) -> dict[str, Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = {"json": out / "attribution.json", "plot": out / "attribution.png"}
        files["json"].write_text(json.dumps(self.to_dict(n), indent=1))
        self.plot(files["plot"], n=min(n, 10))
        return files

    def plot(self, path, n: int = 10) -> Path:
        """Log-mel spectrogram with the top (feature, time) entries marked, over the per-frame attribution."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        enc = self.encoder
        frames = enc.scores.shape[0]
        seconds = frames * FRAME_SECONDS
        fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, height_ratios=[3, 2])
        if self.mel is not None:
            ax.imshow(self.mel, origin="lower", aspect="auto", extent=(0, seconds, 0, self.mel.shape[0]), cmap="magma")
        ax.set_ylabel("mel bin")
        top = enc.top(n, self.labels)
        peak = max((abs(r["score"]) for r in top), default=1.0) or 1.0
        for r in top:
            colour = "cyan" if r["score"] > 0 else "lime"
            y = self.mel.shape[0] * 0.9 if self.mel is not None else 1.0
            ax.axvline(r["time"], color=colour, lw=0.8 + 2.0 * abs(r["score"]) / peak, alpha=0.8)
            tag = f"f{r['feature']}" + (f" /{r['phone']}/" if "phone" in r else "")
            ax.text(r["time"], y, tag, color="white", fontsize=7, rotation=90, va="top", ha="right")
        ax.set_title(
            f"{self.meta['model']} {enc.hook}: attribution of token {self.meta['token']!r} "
            f"(#{self.meta['token_index']}, logit {self.meta['logit']:.2f}); cyan: pushes toward it, green: against"
        )
        t = (np.arange(frames) + 0.5) * FRAME_SECONDS
        bx.plot(t, enc.scores.sum(1), lw=0.9, label="SAE features")
        bx.plot(t, enc.error, lw=0.9, label="error term", alpha=0.7)
        bx.axhline(0, color="grey", lw=0.5)
        bx.set(xlabel="time (s)", ylabel="gradient × activation", xlim=(0, seconds))
        bx.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return Path(path)


def _sae_attribution(splice: _Splice, hook: HookPoint, sae, rows: int | None) -> SAEAttribution:
    codes = splice.codes
    grad_codes = codes.grad if codes.grad is not None else torch.zeros_like(codes)
    grad_out = splice.out.grad if splice.out.grad is not None else torch.zeros_like(splice.out)
    scores = (grad_codes * codes.detach()).float()
    error = (grad_out * splice.error).sum(-1)
    bias = grad_out @ sae.b_dec.detach().float()
    total = (grad_out * splice.x).sum(-1)
    cut = slice(None) if rows is None else slice(0, rows)
    as_np = lambda t: t.detach()[cut].cpu().numpy()  # noqa: E731
    return SAEAttribution(hook.name, hook.side, as_np(scores), as_np(codes), as_np(error), as_np(bias), as_np(total))


@contextlib.contextmanager
def _frozen(model):
    """Whisper's weights need no gradient here: only the codes' (and the hook's) are read."""
    was = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in was:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in was:
            p.requires_grad_(flag)


def _forward_logit(lw, features: Tensor, choice: TokenChoice) -> Tensor:
    ids = torch.tensor([choice.ids], device=lw.device)
    logits = lw.model(input_features=features.to(lw.model.dtype), decoder_input_ids=ids, use_cache=False).logits
    return logits[0, choice.position - 1, choice.token_id].float()


def attribute(
    sae,
    lw,
    audio: np.ndarray,
    *,
    token: int | None = None,
    word: str | None = None,
    text: str | None = None,
    decoder_sae=None,
    labels=None,
    clip: str | None = None,
    text_ids: list[int] | None = None,
) -> Attribution:
    """Attribute one transcript token's logit to ``sae``'s (feature, frame) entries of ``audio`` (16 kHz,
    at most 30 s): gradient × activation through Whisper with the SAE spliced in, error term kept.

    ``text``: teacher-force this reference instead of Whisper's own greedy transcript. ``token`` /
    ``word``: which token (see ``choose_token``). ``decoder_sae``: an SAE at a decoder hook, spliced in
    too (all positions), whose features at the token are reported. ``labels``: an ``AnalysisResult``
    of ``sae`` whose phone and word labels name the features. ``text_ids``: the transcript's text
    tokens when already known (e.g. Whisper's greedy ones), instead of decoding or tokenising again.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or len(audio) == 0:
        raise ValueError(f"audio must be a non-empty mono clip, got shape {audio.shape}")
    if len(audio) > WINDOW_SECONDS * SAMPLE_RATE:
        raise ValueError(f"the clip is {len(audio) / SAMPLE_RATE:.1f} s; attribution reads one 30-s window")
    hook = HookPoint.parse(sae.cfg.hook_name or "", lw.config) if sae.cfg.hook_name else None
    if hook is None or hook.side != "encoder":
        raise ValueError(f"the SAE must read an encoder hook; its hook is {sae.cfg.hook_name!r}")
    if int(sae.cfg.d_in) != int(lw.d_model):
        raise ValueError(f"the SAE reads width {sae.cfg.d_in} but {lw.name} has d_model {lw.d_model}")
    dec_hook = None
    if decoder_sae is not None:
        dec_hook = HookPoint.parse(decoder_sae.cfg.hook_name or "", lw.config) if decoder_sae.cfg.hook_name else None
        if dec_hook is None or dec_hook.side != "decoder":
            raise ValueError(f"the decoder SAE must read a decoder hook; its hook is {decoder_sae.cfg.hook_name!r}")
    features = lw.log_mel([audio])
    n_real = frames_for_duration(len(audio) / SAMPLE_RATE)
    forced_on = "reference" if text is not None and text_ids is None else "model"
    if text_ids is not None:
        text_ids = list(text_ids)
    elif text is None:
        text_ids = lw.greedy_tokens(features, list(lw.prompt_ids), lw.config.max_target_positions - len(lw.prompt_ids))[
            0
        ]
    else:
        from whisper_sae.activations.decoder_text import as_whisper_writes

        text_ids = lw.text_tokens(as_whisper_writes(text))
    choice = choose_token(lw, text_ids, token=token, word=word)
    enc = _Splice(sae, frame_mask([n_real], lw.config.max_source_positions))
    dec = _Splice(decoder_sae, None) if decoder_sae is not None else None
    with torch.enable_grad(), _frozen(lw.model), patch(lw.model, hook, enc.fn()):
        if dec is not None:
            with patch(lw.model, dec_hook, dec.fn()):
                logit = _forward_logit(lw, features, choice)
        else:
            logit = _forward_logit(lw, features, choice)
        logit.backward()
    mel = features[0, :, : 2 * n_real].cpu().numpy()
    meta = {
        "clip": clip,
        "model": lw.name,
        "sae_hook": hook.name,
        "d_sae": int(sae.cfg.d_sae),
        "transcript": lw.tokenizer.decode(text_ids, skip_special_tokens=True).strip(),
        "teacher_forced_on": forced_on,
        "token": _token_text(lw, choice),
        "token_id": choice.token_id,
        "token_index": choice.index,
        "position": choice.position,
        "logit": float(logit.detach()),
        "frames": n_real,
    }
    result = Attribution(
        meta=meta,
        encoder=_sae_attribution(enc, hook, sae, None),
        decoder=_sae_attribution(dec, dec_hook, decoder_sae, None) if dec is not None else None,
        transcript_tokens=choice.pieces,
        mel=mel,
        labels=labels,
    )
    result.choice, result.features = choice, features  # for ablation_check
    return result


@torch.no_grad()
def _logits_with(lw, sae, hook: HookPoint, features: Tensor, choice: TokenChoice, edits, n_real: int) -> np.ndarray:
    """The token's logit with each row's ablation (``ablate_rows_fn``) applied, one batch row per edit.

    At ``encoder.out`` the edit is applied to the encoder's output once computed (the encoder runs once,
    the decoder once per row): the same numbers as patching the hook, since nothing of the encoder
    comes after it. At other hooks every row runs the whole model under ``patch``."""
    ids = torch.tensor([choice.ids] * len(edits), device=lw.device)
    real = frame_mask([n_real] * len(edits), lw.config.max_source_positions)
    edit = ablate_rows_fn(sae, edits, real)
    if hook.side == "encoder" and hook.layer is None:
        hidden = lw.model.model.encoder(features.to(lw.model.dtype)).last_hidden_state
        hidden = edit(hidden.expand(len(edits), -1, -1))
        logits = lw.model(encoder_outputs=(hidden,), decoder_input_ids=ids, use_cache=False).logits
    else:
        batch = features.expand(len(edits), -1, -1)
        with patch(lw.model, hook, edit):
            logits = lw.model(input_features=batch.to(lw.model.dtype), decoder_input_ids=ids, use_cache=False).logits
    return logits[:, choice.position - 1, choice.token_id].float().cpu().numpy()


def ablation_check(
    sae, lw, result: Attribution, *, k: int = 10, n_random: int = 3, seed: int = 0, batch: int = 8
) -> dict:
    """Real ablations against the attribution's estimates for one token.

    - ``features``: each of the top-k features by |attribution summed over frames|, removed on every real
      frame: estimate ``-sum_t score[t, f]`` vs the real change of the logit.
    - ``entries``: each of the top-k (feature, frame) entries removed at its frame only.
    - ``joint``: the top-k features removed together, against ``n_random`` draws of k random active features.
    """
    hook = HookPoint.parse(sae.cfg.hook_name, lw.config)
    enc = result.encoder
    choice, features, n_real = result.choice, result.features, int(result.meta["frames"])
    top_features = [r["feature"] for r in enc.by_feature(k)]
    top_entries = [(r["feature"], r["row"]) for r in enc.top(k)]
    active = np.nonzero((enc.codes > 0).any(0))[0]
    rng = np.random.default_rng(seed)
    randoms = [
        sorted(rng.choice(active, size=min(len(top_features), len(active)), replace=False).tolist())
        for _ in range(n_random)
    ]
    edits = [[]]  # row 0: nothing ablated (the splice with error term: clean Whisper)
    edits += [[(f, None)] for f in top_features]
    edits += [[(f, t)] for f, t in top_entries]
    edits += [[(f, None) for f in top_features]]
    edits += [[(f, None) for f in r] for r in randoms]
    values = np.concatenate(
        [
            _logits_with(lw, sae, hook, features, choice, edits[i : i + batch], n_real)
            for i in range(0, len(edits), batch)
        ]
    )
    base = float(values[0])
    effects = values - base
    i = 1
    f_eff = effects[i : i + len(top_features)]
    i += len(top_features)
    e_eff = effects[i : i + len(top_entries)]
    i += len(top_entries)
    joint = float(effects[i])
    rand = effects[i + 1 :]
    f_est = np.array([-float(enc.scores[:, f].sum()) for f in top_features])
    e_est = np.array([-float(enc.scores[t, f]) for f, t in top_entries])
    return {
        "logit": base,
        "logit_attribution_pass": result.meta["logit"],
        "features": {"ids": top_features, "estimate": f_est.tolist(), "effect": f_eff.tolist()},
        "entries": {"ids": [list(e) for e in top_entries], "estimate": e_est.tolist(), "effect": e_eff.tolist()},
        "joint_top_k": {"estimate": float(f_est.sum()), "effect": joint},
        "joint_random_k": {
            "ids": randoms,
            "estimate": [-float(enc.scores[:, r].sum()) for r in randoms],
            "effect": rand.tolist(),
        },
    }

"""HTML of the dashboard's pages. Every string that comes from data goes through ``html.escape``
(or, inside ``<script>``, through :func:`js_literal`), so transcripts and ids cannot inject markup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np

from whisper_sae.audio.constants import FRAME_SECONDS, WINDOW_SECONDS

from ..phones import display_phone
from . import media
from .selectivity import SIGNIFICANT_Q


def js_literal(obj) -> str:
    """JSON safe to embed in a ``<script>`` element (no ``</script>``, no HTML-significant characters)."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    for char, code in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, code)
    return text


@dataclass
class PageContext:
    result: object
    tokenizer: object
    utts: dict
    series: dict
    words: dict
    excerpt_seconds: float
    side: str
    out: Path
    attributes: object = None
    """An ``AttributeSelectivity`` (speaker attributes from probe.json), or None."""
    audio_ext: str = "wav"
    """Extension of the clips' audio (``ogg``: Opus; ``flac``; ``wav``), from :func:`media.audio_format`."""
    image_ext: str = "png"
    """Extension of the spectrograms (``webp`` or ``png``)."""


def label_html(kind: str, label, extra_class: str = "") -> str:
    """A phone or word label as a ``<span class="label KIND">``; phones are shown in ARPAbet, and one mapped
    from eSpeak's IPA carries that IPA in its tooltip (``title``) and ``data-ipa``."""
    cls = f"label {kind} {extra_class}".strip()
    if kind != "phone":
        return f'<span class="{cls}">{escape(str(label))}</span>'
    shown, ipa = display_phone(label)
    if ipa is None:
        return f'<span class="{cls}">{escape(shown)}</span>'
    tip = escape(f"eSpeak IPA /{ipa}/ → ARPAbet {shown}")
    return f'<span class="{cls}" title="{tip}" data-ipa="{escape(ipa)}">{escape(shown)}</span>'


def _head(title: str, css: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="{css}"></head><body>'
    )


def _scores(row: dict) -> str:
    cells = [
        f"<dt>firing frequency</dt><dd>{row['freq']:.3%}</dd>",
        f"<dt>mean activation (when firing)</dt><dd>{row['mean_act']:.3g}</dd>",
        f"<dt>max activation</dt><dd>{row['max_act']:.3g}</dd>",
    ]
    for kind in ("phone", "word"):
        if f"{kind}_f1" in row:
            label = label_html(kind, row[kind]) if row[kind] is not None else "—"
            cells.append(
                f"<dt>best {kind}</dt><dd>{label} "
                f"F1 {row[f'{kind}_f1']:.2f} (precision {row[f'{kind}_precision']:.2f}, "
                f"recall {row[f'{kind}_recall']:.2f})</dd>"
            )
    return '<dl class="scores">' + "".join(cells) + "</dl>"


def _highlighted_words(words: list[dict], times, acts, scale: float, start: float, end: float) -> str:
    """The transcript's words, each shaded by the feature's peak activation inside it."""
    spans = []
    for w in words:
        inside = (times >= float(w["start"])) & (times < max(float(w["end"]), float(w["start"]) + FRAME_SECONDS))
        peak = float(acts[inside].max()) if inside.any() else 0.0
        alpha = min(peak / max(scale, 1e-12), 1.0)
        near = float(w["end"]) >= start and float(w["start"]) <= end
        near_cls = " near" if near else ""
        if peak > 0:
            spans.append(
                f'<span class="w active{near_cls}" style="--a:{alpha:.2f}" title="{peak:.3g} at '
                f'{float(w["start"]):.2f} s">{escape(str(w["word"]))}</span>'
            )
        else:  # a silent word needs no shade or tooltip (long transcripts would double the page)
            spans.append(f'<span class="w{near_cls}">{escape(str(w["word"]))}</span>')
    return " ".join(spans)


def _token_context(ctx: PageContext, acts, tokens: list[int], pos: int, scale: float) -> str:
    lo, hi = max(pos - 12, 0), min(pos + 6, len(tokens))
    spans = []
    for j in range(lo, hi):
        text = ctx.tokenizer.decode([tokens[j]])
        alpha = min(float(acts[j]) / max(scale, 1e-12), 1.0)
        cls = "tok here" if j == pos else "tok"
        spans.append(f'<span class="{cls}" style="--a:{alpha:.2f}" title="{float(acts[j]):.3g}">{escape(text)}</span>')
    return "".join(spans)


def _clip_card(ctx: PageContext, feature: int, j: int, clip: dict, scale: float) -> str:
    utt = ctx.utts.get(clip["utt"])
    key = (clip["utt"], feature)
    head = (
        f'<div class="cliphead"><b>{escape(clip["id"])}</b> activation {clip["act"]:.3g}'
        + (f" at {clip['time']:.2f} s" if np.isfinite(clip["time"]) else "")
        + "</div>"
    )
    if utt is None or key not in ctx.series:
        return f'<div class="clip missing">{head}<p class="muted">audio not available</p></div>'
    times, acts, tokens = ctx.series[key]
    stem = f"f{feature}_{j}"
    audio_name = f"{stem}.{ctx.audio_ext}"
    write = media.write_wav if ctx.audio_ext == "wav" else media.write_audio
    if ctx.side == "decoder":
        start, end = 0.0, min(utt.duration, float(WINDOW_SECONDS))
        write(ctx.out / "clips" / audio_name, utt.audio, start, end)
        body = f'<div class="context">{_token_context(ctx, acts, tokens, clip["pos"], scale)}</div>'
    else:
        start, end = media.excerpt_bounds(clip["time"], utt.duration, ctx.excerpt_seconds)
        write(ctx.out / "clips" / audio_name, utt.audio, start, end)
        image = f"{stem}.{ctx.image_ext}"
        media.write_spectrogram(ctx.out / "clips" / image, utt.audio, start, end)
        words = ctx.words.get(clip["utt"]) or []
        transcript = _highlighted_words(words, times, acts, scale, start, end) if words else escape(utt.text or "")
        body = (
            _spectrogram_box(image, start, end, media.activation_svg(times, acts, start, end, scale, clip["time"]))
            + f'<p class="transcript">{transcript}</p>'
        )
    return (
        f'<div class="clip" data-start="{start:.3f}" data-end="{end:.3f}">{head}'
        f'<audio controls preload="auto" src="../clips/{audio_name}"></audio>{body}</div>'
    )


def _spectrogram_box(image: str, start: float, end: float, overlay: str) -> str:
    """The spectrogram with its axes: frequency (kHz) on the left, time (s, utterance clock) below, the
    activation drawn over it and a playhead that ``feature.js`` moves with the audio (a click seeks)."""
    freq = "".join(
        f'<span class="tick" style="bottom:{100 * frac:.2f}%">{label}</span>' for frac, label in media.frequency_ticks()
    )
    times = "".join(
        f'<span class="tick" style="left:{100 * frac:.2f}%">{label}</span>'
        for frac, label in media.time_ticks(start, end)
    )
    return (
        '<div class="specbox">'
        f'<div class="faxis" aria-label="frequency, kHz">{freq}<span class="unit">kHz</span></div>'
        f'<div class="spec" title="click to play from here"><img src="../clips/{image}" '
        f'alt="spectrogram {start:.2f}–{end:.2f} s, 0–8 kHz">{overlay}<div class="playhead"></div></div>'
        f'<div class="taxis" aria-label="time, s">{times}</div><div class="tunit">s</div></div>'
    )


def _num(x, fmt: str) -> str:
    return "—" if x is None else format(float(x), fmt)


def _q(q) -> str:
    # probe.json files written before 5-significant-digit rounding hold q < 5e-6 as 0.
    return "—" if q is None else ("&lt; 5e-6" if q == 0 else format(float(q), ".2g"))


def _attribute_section(ctx: PageContext, feature: int) -> str:
    """The feature's selectivity for each probed speaker attribute (from probe.json, utterance means)."""
    sel = ctx.attributes
    if not sel:
        return ""
    rows = []
    for name, r in sel.of(feature).items():
        block = sel.attributes[name]
        direction = sel.direction(r)
        strong = ' class="significant"' if r.get("q") is not None and r["q"] < SIGNIFICANT_Q else ""
        rows.append(
            f'<tr data-attribute="{escape(name)}"{strong}><td>{escape(name)}</td>'
            f'<td class="num">{_num(r.get("score"), ".3f")}</td><td class="num">{r["rank"]} of {len(block.rank)}</td>'
            f'<td>{escape(direction) if direction is not None else "—"}</td><td class="num">{_num(r.get("auroc"), ".3f")}</td>'
            f'<td class="num">{_num(r.get("cohens_d"), ".2f")}</td><td class="num">{_num(r.get("rho"), ".3f")}</td>'
            f'<td class="num">{_q(r.get("q"))}</td></tr>'
        )
    sources = sorted({(b.source, b.n_utterances, b.n_speakers) for b in sel.attributes.values()})
    note = "; ".join(f"{escape(src)}: {n} utterances, {s} speakers" for src, n, s in sources)
    return (
        '<h2>Speaker attributes</h2><table class="attrs"><thead><tr><th>attribute</th><th>selectivity</th>'
        "<th>rank</th><th>direction</th><th>AUROC</th><th>Cohen's d</th><th>Spearman rho</th><th>q (BH)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<p class="muted">Utterance-mean codes. Selectivity: |2·AUROC − 1| of the class the feature separates best from the rest '
        f"(|rho| for numbers); q: Mann–Whitney (or Spearman) p, Benjamini–Hochberg corrected. From {note}.</p>"
    )


def feature_page(ctx: PageContext, feature: int, clip_rows: list[dict], neighbours) -> str:
    result = ctx.result
    row = result.feature_row(feature)
    scale = row["max_act"]
    nav = ['<a href="../index.html">all features</a>']
    if neighbours[0] is not None:
        nav.append(f'<a href="f{neighbours[0]}.html" rel="prev">← feature {neighbours[0]}</a>')
    if neighbours[1] is not None:
        nav.append(f'<a href="f{neighbours[1]}.html" rel="next">feature {neighbours[1]} →</a>')
    title = f"Feature {feature}"
    kind = "phone" if row.get("phone") else "word"
    label = row.get(kind)
    cards = "".join(_clip_card(ctx, feature, j, clip, scale) for j, clip in enumerate(clip_rows))
    meta = result.meta
    return (
        _head(f"{title} · {meta.get('hook', '')}", "../style.css")
        + f"<nav>{' · '.join(nav)}</nav><h1>{title}"
        + (f" {label_html(kind, label)}" if label else "")
        + "</h1>"
        + f'<p class="muted">{escape(str(meta.get("model")))} · {escape(str(meta.get("hook")))} · '
        f"{escape(str(meta.get('corpus')))}</p>"
        + _scores(row)
        + _attribute_section(ctx, feature)
        + "<h2>Activation density</h2>"
        + media.histogram_svg(result.arrays["hist"][feature], result.arrays["hist_edges"])
        + f'<h2>Top clips</h2><div class="clips" id="clips">{cards or "<p>No clips.</p>"}</div>'
        + '<script src="../feature.js"></script></body></html>'
    )


def index_rows(result, pages: set[int], attributes=None, reasons=None) -> list[dict]:
    """One dict per feature for the index: its scores, ``page`` (whether it has one) and, without a page,
    ``reason`` (why not, from ``reasons``); phone labels in ARPAbet, with ``phone_ipa`` where mapped from IPA."""
    rows = []
    for f in range(result.d_sae):
        row = result.feature_row(f)
        row["page"] = f in pages
        if not row["page"] and reasons:
            row["reason"] = reasons.get(f)
        if row.get("phone") is not None:
            row["phone"], ipa = display_phone(row["phone"])
            if ipa is not None:
                row["phone_ipa"] = ipa
        if attributes:
            row.update(attributes.index_fields(f))
        rows.append({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    return rows


def index_page(result, pages: set[int], attributes=None, reasons=None) -> str:
    """The index; ``reasons``: {feature: why it has no page} (see ``build.no_page_reasons``)."""
    meta, summary = result.meta, result.summary
    facts = [
        f"{escape(str(meta.get('model')))} · {escape(str(meta.get('hook')))} · "
        f"{result.d_sae} features ({escape(str(meta.get('architecture')))}) · "
        f"corpus {escape(str(meta.get('corpus')))} · {summary.get('n_utterances', 0)} utterances, "
        f"{summary.get('n_positions', 0)} positions · {summary.get('n_dead', 0)} never fired"
    ]
    for kind in ("phone", "word"):
        s = summary.get(f"{kind}_labels")
        if s:
            facts.append(
                f"{kind} labels: F1 &gt; 0.5 for {s['f1>0.5']}, &gt; 0.7 for {s['f1>0.7']}, "
                f"&gt; 0.9 for {s['f1>0.9']} of {s['n_alive']} features"
            )
    rows = index_rows(result, pages, attributes, reasons)
    if any("phone_ipa" in r for r in rows):
        facts.append(
            "phone labels in ARPAbet, mapped from the corpus' eSpeak IPA (the IPA is in each label's tooltip; "
            "the mapping: docs/phones.md in whisper-sae)"
        )
    spec, attr_heads, attr_controls = [], "", ""
    if attributes:
        spec = attributes.filter_spec()
        facts.append(
            "speaker attributes: "
            + ", ".join(
                f"{escape(a)} ({b.n_utterances} utterances, {b.n_speakers} speakers)"
                for a, b in attributes.attributes.items()
            )
        )
        attr_heads = "".join(
            f'<th data-key="sel:{escape(a)}">{escape(a)} selectivity</th>' for a in attributes.attributes
        )
        attr_controls = (
            '<span class="attr-filter"><label>selective for <select id="attr" aria-label="attribute">'
            '<option value="">—</option></select></label> <select id="attr-class" aria-label="class">'
            '<option value="">any class</option></select> <label>score ≥ <input id="min-sel" type="number" '
            'min="0" max="1" step="0.05" value="0"></label> <label><input id="significant" type="checkbox" checked>'
            f" q &lt; {SIGNIFICANT_Q:g}</label></span>"
        )
    return (
        _head("whisper-sae features", "style.css")
        + "<h1>Features</h1>"
        + "".join(f'<p class="muted">{f}</p>' for f in facts)
        + '<div class="controls"><input id="search" type="search" placeholder="search label or feature number"'
        ' aria-label="search"> '
        + attr_controls
        + ' <span id="count"></span></div>'
        + '<table id="features"><thead><tr>'
        '<th data-key="feature">feature</th><th data-key="freq">frequency</th>'
        '<th data-key="max_act">max act.</th><th data-key="mean_act">mean act.</th>'
        '<th data-key="phone" title="ARPAbet; eSpeak IPA in the tooltip">phone</th><th data-key="phone_f1">phone F1</th>'
        '<th data-key="word">word</th><th data-key="word_f1">word F1</th>'
        + attr_heads
        + '<th data-key="page" title="a link, or why the feature has no page (live features are ranked by best '
        'label F1, then firing frequency)">page</th>'
        "</tr></thead><tbody></tbody></table>" + f"<script>const FEATURES = {js_literal(rows)};"
        f"const ATTRIBUTES = {js_literal(spec)};const SIGNIFICANT_Q = {SIGNIFICANT_Q!r};</script>"
        + '<script src="index.js"></script></body></html>'
    )

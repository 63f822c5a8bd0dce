"""``extract``: run Whisper over a corpus and write the activations at named hook points to a store.

Encoder hooks give one row per 20-ms frame of real audio (frames of the 30-s padding are computed,
since every frame attends to the whole window, but never stored). Decoder hooks give one row per
token of the teacher-forced sequence: the prompt, the transcript's tokens, then the end token; the
token id is kept. A run resumes where a killed one stopped (see ``writer.py``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from whisper_sae.artifacts import open_corpus, open_model
from whisper_sae.audio import Utterance
from whisper_sae.audio.constants import FRAME_SECONDS, FRAMES_PER_SECOND, SAMPLE_RATE, WINDOW_SAMPLES
from whisper_sae.runtime import cpu_has_fast_bf16, init_distributed, resolve_device
from whisper_sae.runtime.disk import check_free_space
from whisper_sae.runtime.locks import exclusive
from whisper_sae.whisper import HookPoint, frames_for_duration, run_decoder_teacher_forced, run_encoder

from .decoder_text import window_token_ids
from .ranks import check_layout, extract_rank
from .store import ActivationStore
from .windows import Window, plan_windows
from .writer import DEFAULT_SHARD_ROWS, StoreWriter, parse_dtype

log = logging.getLogger(__name__)

AUTOCAST = {
    None: None,
    "none": None,
    "fp32": None,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
# Measured with benchmarks/extract.py (tiny.en, encoder.out, LibriSpeech test-clean): bf16 autocast
# keeps mean cosine 0.9999 to fp32, but 0.06 % of frames fall below 0.999 and the worst to 0.58
# (H200; 0.95 on CPU). Not "within 0.999" for every frame, so the faithful default is fp32.
DEFAULT_AUTOCAST = None


class ExtractionFailedError(RuntimeError):
    """A run that extracted nothing: every utterance was skipped (the reasons stay in the manifest)."""


@dataclass
class Options:
    mode: str
    batch_size: int
    autocast: torch.dtype | None
    decoder_text: str
    max_bytes: int | None = None
    pad_rows: bool = False
    mel_backend: str | None = None  # None: LoadedWhisper.log_mel's default (auto: torch on a GPU, numpy on a CPU)


@dataclass
class GroupResult:
    rows: list[dict[str, list]]  # per utterance: {hook: [(acts, pos, time, token), ...]}
    n_windows: list[int]  # per utterance: windows it took part in
    sources: list[str | None]  # per utterance: where its decoder text came from
    windows_run: int  # 30-s windows the encoder ran for the group


def _frames_for_samples(n: int) -> int:
    return frames_for_duration(n / SAMPLE_RATE)


def _autocast_is_slow(dtype, device) -> bool:
    """True where reduced-precision autocast would fall back to slow kernels (a CPU without AVX-512)."""
    return dtype is not None and device.type == "cpu" and not cpu_has_fast_bf16()


def _bad_reason(u: Utterance) -> str | None:
    """Why an utterance cannot be extracted, or None. Corpus readers catch most of these first."""
    if u.sample_rate != SAMPLE_RATE:
        return f"sample rate {u.sample_rate} Hz; extraction needs {SAMPLE_RATE} Hz (load it with load_corpus)"
    audio = np.asarray(u.audio)
    if audio.ndim != 1 or len(audio) == 0:
        return f"audio of shape {audio.shape}; extraction needs non-empty mono audio"
    if not np.isfinite(audio).all():
        return "audio holds NaN or infinite samples"
    return None


def _record(u: Utterance, n_windows: int, decoder_text: str | None) -> dict:
    rec = {
        "id": u.id,
        "duration": round(u.duration, 4),
        "text": u.text,
        "speaker": u.speaker,
        "path": u.path,
        "attributes": u.attributes or {},
        "n_windows": n_windows,
    }
    if decoder_text:
        rec["decoder_text"] = decoder_text  # "reference", "alignment" (reference cut by time) or "model"
    if u.alignment:
        rec["alignment"] = u.alignment
    return rec


def _groups(utts: Iterable[Utterance], opts: Options) -> Iterator[list[Utterance]]:
    """Runs of utterances that fill about ``batch_size`` windows (at least 4 windows' worth when packing)."""
    target = WINDOW_SAMPLES * (max(opts.batch_size, 4) if opts.mode == "packed" else opts.batch_size)
    group, samples = [], 0
    for u in utts:
        group.append(u)
        samples += math.ceil(len(u.audio) / WINDOW_SAMPLES) * WINDOW_SAMPLES if opts.mode == "padded" else len(u.audio)
        if samples >= target:
            yield group
            group, samples = [], 0
    if group:
        yield group


def _encode_group(lw, utts: list[Utterance], points: list[HookPoint], opts: Options):
    """Run the encoder (and decoder) over a group's windows; rows per utterance and hook."""
    audios = [np.asarray(u.audio, dtype=np.float32) for u in utts]
    windows = plan_windows([len(a) for a in audios], opts.mode, frames_for=_frames_for_samples)
    enc = [p.name for p in points if p.side == "encoder"]
    dec = [p.name for p in points if p.side == "decoder"]
    run = enc + (["encoder.out"] if dec and "encoder.out" not in enc else [])
    tokens, sources = (
        window_token_ids(lw, utts, windows, audios, opts.decoder_text, opts.batch_size)
        if dec
        else (None, [None] * len(utts))
    )
    rows: list[dict[str, list]] = [{h: [] for h in enc + dec} for _ in utts]
    n_windows = [0] * len(utts)
    token_pos = [0] * len(utts)
    for b in range(0, len(windows), opts.batch_size):
        batch: list[Window] = windows[b : b + opts.batch_size]
        features = lw.log_mel([w.audio(audios) for w in batch], backend=opts.mel_backend)  # on the model's device
        # Only real frames are stored, so the deepest block needs only those rows (the same function of the input).
        needed = None if dec or opts.pad_rows else max(g.first_frame + g.n_frames for w in batch for g in w.segments)
        acts = run_encoder(lw, features, run, stop_after_deepest=not dec, autocast_dtype=opts.autocast, rows=needed)
        for j, w in enumerate(batch):
            for seg in w.segments:
                n_windows[seg.utt] += 1
                pos = torch.arange(seg.n_frames, dtype=torch.int32) + seg.pos_offset
                for h in enc:
                    a = acts[h][j, seg.first_frame : seg.first_frame + seg.n_frames]
                    rows[seg.utt][h].append((a, pos, pos.float() * FRAME_SECONDS, None))
        if dec:
            ids = [tokens[b + j] for j in range(len(batch))]
            autocast = (
                torch.autocast(lw.device.type, dtype=opts.autocast)
                if opts.autocast is not None
                else torch.autocast(lw.device.type, enabled=False)
            )
            with autocast:
                out = run_decoder_teacher_forced(lw, acts["encoder.out"], ids, dec)
            for j, w in enumerate(batch):
                u = w.segments[0].utt  # decoder hooks run in padded mode: one segment per window
                n = len(ids[j])
                pos = torch.arange(n, dtype=torch.int32) + token_pos[u]
                token_pos[u] += n
                for h in dec:
                    rows[u][h].append((out[h][j, :n].float(), pos, None, torch.tensor(ids[j], dtype=torch.int32)))
    return GroupResult(rows, n_windows, sources, len(windows))


def extract(
    model,
    corpus,
    hooks: list[str] | str,
    out,
    *,
    mode: str = "padded",
    batch_size: int | None = None,
    dtype: str = "float16",
    autocast: str | None = DEFAULT_AUTOCAST,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    max_utterances: int | None = None,
    decoder_text: str = "reference",
    device=None,
    max_store_gb: float | None = None,
    pad_rows: bool = False,
    mel_backend: str | None = None,
    background_writes: bool = True,
    progress: bool = True,
    on_utterance: Callable[[int], None] | None = None,
) -> ActivationStore:
    """Extract activations at ``hooks`` for every utterance of ``corpus`` into the store ``out``; resumes.

    ``model``: a ``LoadedWhisper`` or a ``load_whisper`` spec. ``corpus``: a ``load_corpus`` spec, a
    list of them, a ``Corpus`` or any iterable of ``Utterance``. ``mode``: ``"padded"`` or ``"packed"`` (see
    ``windows.py``; decoder hooks need ``"padded"``). ``autocast``: None (fp32) or ``"bf16"``/``"fp16"``.
    ``decoder_text``: teacher-force the ``"reference"`` transcript (the model's own greedy transcript
    where there is none) or always the ``"model"``'s own. ``max_utterances`` counts utterances done
    in earlier runs too. ``max_store_gb`` stops the run (keeping what is written; a rerun with a
    larger limit resumes) once the activations reach that size. ``on_utterance(n)`` is called after
    each utterance is handed to the writer. The deepest encoder block is computed for the stored (real)
    frames only: the same computation for them, equal up to float rounding of the smaller matmuls (38
    test-clean utterances: cosine 1.00000, at most one fp16 step apart in the store; benchmarks/extract.py);
    ``pad_rows=True`` computes the padding frames' rows too, as the plain encoder does.
    ``mel_backend``: ``"auto"`` (default: torch on a GPU, numpy on a CPU), ``"torch"`` (log-mel on the
    model's device) or ``"numpy"`` (the ``transformers`` feature extractor). ``background_writes``: shards, checksums and the manifest are
    written by a thread while the next batch is encoded (see ``writer.py``); False writes in line.
    """
    world = init_distributed(device)  # joins torchrun's process group, if launched by torchrun
    lw = open_model(model, device=resolve_device(device))  # auto: the GPU of this rank, else the CPU
    names = [hooks] if isinstance(hooks, str) else list(dict.fromkeys(hooks))
    if not names:
        raise ValueError("no hooks given; name at least one, e.g. encoder.out or decoder.blocks.1")
    points = list({p.name: p for p in (HookPoint.parse(h, lw.config) for h in names)}.values())
    if autocast not in AUTOCAST:
        raise ValueError(f"autocast {autocast!r} is not known; use one of none, bf16, fp16")
    if mel_backend not in (None, "auto", "torch", "numpy"):
        raise ValueError(f"mel_backend {mel_backend!r} is not known; use 'auto', 'torch' or 'numpy'")
    if decoder_text not in ("reference", "model"):
        raise ValueError(f"decoder_text {decoder_text!r} is not known; use 'reference' or 'model'")
    if mode == "packed" and any(p.side == "decoder" for p in points):
        raise ValueError(
            "mode 'packed' shares one window among several utterances, so a decoder hook has no "
            "single transcript to teacher-force; use mode 'padded' for decoder hooks"
        )
    if _autocast_is_slow(AUTOCAST[autocast], lw.device):
        log.warning(
            "this CPU (%s) has no bf16/fp16 matrix instructions: autocast %s will run far slower "
            "than fp32 (bf16 matmul measured over 30x slower than fp32 on an AVX2 machine); use --autocast none",
            torch.backends.cpu.get_cpu_capability(),
            autocast,
        )
    if batch_size is None:
        batch_size = 16 if lw.device.type == "cuda" else 1  # on 2 CPU cores batching did not pay (PEERS.md)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of windows, got {batch_size}")
    opts = Options(
        mode=mode,
        batch_size=batch_size,
        autocast=AUTOCAST[autocast],
        decoder_text=decoder_text,
        max_bytes=None if max_store_gb is None else int(max_store_gb * 1e9),
        pad_rows=pad_rows,
        mel_backend=mel_backend,
    )
    corpus, spec = open_corpus(corpus)  # several specs: one corpus, names kept per utterance
    settings = {
        "mode": mode,
        "autocast": None if opts.autocast is None else str(opts.autocast).replace("torch.", ""),
        "frames_per_second": FRAMES_PER_SECOND,
    }
    if any(p.side == "decoder" for p in points):
        settings.update(
            decoder_text=decoder_text,
            prompt_ids=list(lw.prompt_ids),
            eot_id=lw.eot_id,
            reference_case="all-capitals transcripts are sentence-cased, as Whisper writes",
        )
    model_info = {
        "name": lw.name,
        "spec": lw.spec,
        "d_model": lw.d_model,
        "n_encoder_layers": lw.n_encoder_layers,
        "n_decoder_layers": lw.n_decoder_layers,
        "vocab_size": lw.config.vocab_size,
    }
    writer_kw = dict(
        hooks={p.name: {"d_model": lw.d_model, "kind": p.kind} for p in points},
        model=model_info,
        corpus=spec,
        settings=settings,
        dtype=dtype,
        shard_rows=shard_rows,
        background=background_writes,
    )
    if opts.max_bytes is not None:
        opts.max_bytes //= world.size  # each rank stops at its share of the limit
        _check_limit_holds_a_shard(max_store_gb, opts.max_bytes, world.size, len(points), lw.d_model, dtype, shard_rows)
    if max_store_gb is not None and world.is_main:
        check_free_space(out, max_store_gb)  # refuse before the run rather than fail half-way
    if world.distributed:  # each rank extracts its share into its own sub-store; see ranks.py
        store = extract_rank(
            out,
            world,
            writer_kw,
            lambda writer, share: _run(lw, share, points, opts, writer, None, progress and world.is_main, on_utterance),
            corpus,
            max_utterances,
        )
    else:
        with exclusive(out, "store"):  # a second run into this store fails here, naming this one
            check_layout(out, world)
            _run(lw, corpus, points, opts, StoreWriter(out, **writer_kw), max_utterances, progress, on_utterance)
        store = ActivationStore(out)
    _check_extracted(store, spec)
    return store


def _check_limit_holds_a_shard(limit_gb, limit_bytes, n_processes, n_hooks, d_model, dtype, shard_rows) -> None:
    """Refuse a size limit below one shard per hook: the run would stop after its first rows and still
    write a (short) shard, so the limit would not hold."""
    item = torch.finfo(parse_dtype(dtype)).bits // 8
    one = shard_rows * d_model * item * n_hooks
    if limit_bytes < one:
        per = f" per process ({n_processes} processes)" if n_processes > 1 else ""
        raise ValueError(
            f"--max-store-gb {limit_gb:g} is below one shard per hook{per}: {one / 1e9:.3g} GB "
            f"({shard_rows} rows x d_model {d_model} x {item} bytes x {n_hooks} hooks); raise the "
            "limit or lower --shard-rows"
        )


def _check_extracted(store: ActivationStore, spec: str) -> None:
    """Fail a run that left no utterance in the store, naming how many were skipped and why."""
    u = store.manifest["utterances"]
    if u["n_done"] > 0:
        return
    skipped = u.get("skipped", [])
    if not skipped:
        raise ExtractionFailedError(
            f"corpus {spec} gave no utterances, so {store.path} holds nothing; check the "
            "corpus spec (and --max-utterances)"
        )
    first = "; ".join(f"{s['id']}: {s['reason']}" for s in skipped[:3])
    raise ExtractionFailedError(
        f"no utterance of {spec} could be extracted: all {len(skipped)} were skipped "
        f"(first: {first}); the full list is in {store.path / 'manifest.json'} "
        "(`whisper-sae store info`)"
    )


def _todo(corpus, writer: StoreWriter, max_utterances: int | None, bar) -> Iterator[Utterance]:
    """Utterances still to extract; bad ones are counted as skipped in the writer."""
    done, seen = writer.done_ids, 0
    for u in corpus:
        if max_utterances is not None and seen >= max_utterances:
            return
        if u.id in done:
            seen += 1
            bar.update(1)
            continue
        reason = _bad_reason(u)
        if reason:
            writer.skip(u.id, reason, u.path)
            bar.update(1)
            continue
        seen += 1
        yield u


def _run(lw, corpus, points, opts: Options, writer: StoreWriter, max_utterances, progress, on_utterance):
    try:
        _run_writing(lw, corpus, points, opts, writer, max_utterances, progress, on_utterance)
    except BaseException:
        writer.abort()  # the commits already handed to the writer thread land; the buffered rows do not
        raise


def _run_writing(lw, corpus, points, opts: Options, writer: StoreWriter, max_utterances, progress, on_utterance):
    try:
        total = len(corpus)
    except TypeError:
        total = None
    if max_utterances is not None:
        total = max_utterances if total is None else min(total, max_utterances)
    start, seconds, n_new, n_windows, stopped, n_nonfinite = time.perf_counter(), 0.0, 0, 0, False, 0
    writer.manifest["info"].pop("stopped_at_max_store_gb", None)  # this run decides afresh
    # On an error the writer is left unclosed on purpose: its buffered rows are dropped, the manifest
    # already describes a consistent store, and a rerun redoes exactly the utterances not done.
    with tqdm(total=total, desc="extract", unit="utt", disable=not progress) as bar:
        for group in _groups(_todo(corpus, writer, max_utterances, bar), opts):
            result = _encode_group(lw, group, points, opts)
            n_windows += result.windows_run
            for u, per_hook, nw, src in zip(group, result.rows, result.n_windows, result.sources):
                reason = _nonfinite_reason(writer, per_hook)
                if reason:  # not stored: one such row makes every SAE loss it meets NaN
                    log.warning("skipping utterance %s: %s", u.id, reason)
                    writer.skip(u.id, reason, u.path)
                    n_nonfinite += 1
                    bar.update(1)
                    continue
                idx = writer.begin_utterance(_record(u, nw, src))
                for hook, chunks in per_hook.items():
                    for acts, pos, t, tok in chunks:
                        writer.add(hook, idx, acts, pos, t, tok)
                writer.end_utterance(idx)
                n_new += 1
                seconds += u.duration
                bar.update(1)
                if on_utterance is not None:
                    on_utterance(n_new)
            wall = time.perf_counter() - start
            bar.set_postfix(audio_s_per_s=f"{seconds / max(wall, 1e-9):.1f}")
            if opts.max_bytes is not None and writer.n_bytes >= opts.max_bytes:
                log.warning(
                    "stopping: the store holds %.2f GB, the limit is %.2f GB; rerun with a larger limit to go on",
                    writer.n_bytes / 1e9,
                    opts.max_bytes / 1e9,
                )
                writer.set_info(stopped_at_max_store_gb=opts.max_bytes / 1e9)
                stopped = True
                break
        for s in getattr(corpus, "skipped", []):
            writer.skip(s["id"], s["reason"], s.get("path"))
        wall = time.perf_counter() - start
        writer.set_info(
            last_run={
                "utterances": n_new,
                "audio_seconds": round(seconds, 2),
                "wall_seconds": round(wall, 2),
                "batch_size": opts.batch_size,
                "windows": n_windows,
                "audio_seconds_per_second": round(seconds / max(wall, 1e-9), 2),
                "nonfinite_utterances": n_nonfinite,
            }
        )
        # A run where every utterance was skipped is not complete (extract then fails, keeping the list).
        all_skipped = writer.n_done == 0 and writer.manifest["utterances"]["n_skipped"] > 0
        writer.close(complete=not stopped and not all_skipped)


def _nonfinite_reason(writer: StoreWriter, per_hook: dict[str, list]) -> str | None:
    """Why an utterance's rows cannot be stored (NaN/inf, or beyond the storage dtype's range), or None."""
    for hook, chunks in per_hook.items():
        bad = sum(writer.count_nonfinite(acts) for acts, *_ in chunks)
        if bad:
            total = sum(len(acts) for acts, *_ in chunks)
            dtype = str(writer.dtype).replace("torch.", "")
            return (
                f"{bad} of {total} rows of hook {hook} are NaN or infinite once stored as {dtype} "
                "(float16 holds at most 65504 in magnitude); not stored"
            )
    return None

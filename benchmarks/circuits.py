"""Transcoder and crosscoder beside a residual SAE at equal L0, same block, same data; real speech.

    # the store: tiny.en, 57 min of LibriSpeech train-clean-100 (251 speakers), four hooks of block 2
    whisper-sae extract --model tiny.en --corpus ../shared/data/librispeech/train-clean-100 \
        --hooks encoder.blocks.2,encoder.blocks.2.mlp_in,encoder.blocks.2.mlp_out,encoder.blocks.3 --out STORE
    nice -n 5 python benchmarks/circuits.py --store STORE --out runs/circuits \
        --corpus ../shared/data/librispeech/test-clean \
        --alignments ../shared/data/librispeech/alignments/test-clean [--stage train|eval|all]

Trains, in one pass over the store (the same batches for all three; TopK, k=--k, --width features):
a residual SAE at encoder.blocks.B, a transcoder encoder.blocks.B.mlp_in -> .mlp_out (--skip: with a
skip path) and a crosscoder over encoder.blocks.B and B+1. Then, on the test corpus (other speakers),
for each: EV and L0 of its reconstruction, WER and CE with it spliced in (and with its error term: a
check), and label quality: each feature's best phone by F1 over aligned frames (analysis.features
.labels, as ``whisper-sae analyze`` computes it). Writes OUT/circuits.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from whisper_sae.activations import ActivationStore
from whisper_sae.analysis.features.labels import AlignmentIndex, AlignmentLabeler, f1_summary
from whisper_sae.artifacts import open_corpus, open_model
from whisper_sae.audio.constants import FRAME_SECONDS
from whisper_sae.circuits.replacement import evaluate_replacement, reconstruction
from whisper_sae.sae import SAEConfig
from whisper_sae.sae.io import load_pretrained
from whisper_sae.sae.store_training import train_specs
from whisper_sae.sae.trained_sae import SAESpec
from whisper_sae.whisper import frames_for_duration


def specs(store: ActivationStore, block: int, width: int, k: int, skip: bool) -> list[SAESpec]:
    model = store.manifest.get("model", {})
    common = dict(d_sae=width, architecture="topk", k=k, model_name=model.get("name"), model_spec=model.get("spec"))
    res = f"encoder.blocks.{block}"
    d = store.d_model(res)
    return [
        SAESpec(SAEConfig(d_in=d, hook_name=res, **common), name="sae"),
        SAESpec(
            SAEConfig(
                d_in=d,
                hook_name=f"{res}.mlp_in",
                hook_name_out=f"{res}.mlp_out",
                d_out=d,
                skip=skip,
                apply_b_dec_to_input=False,
                **common,
            ),
            name="transcoder",
        ),
        SAESpec(SAEConfig(d_in=2 * d, hook_names=[res, f"encoder.blocks.{block + 1}"], **common), name="crosscoder"),
    ]


@torch.no_grad()
def labels(sae, lw, corpus, alignments, batch_size=8) -> dict:
    """Phone (and word) label F1 of each feature over the aligned test frames, and EV / L0 over them."""
    index = AlignmentIndex(alignments)
    utts, _ = open_corpus(corpus)
    utts = [u for u in utts if index.get(u.id) is not None]
    labeler = AlignmentLabeler(sae.cfg.d_sae)
    sse = sq = 0.0
    sums, n_rows, l0 = 0.0, 0, 0
    n_out = len(sae.cfg.output_hooks)
    part_sse, part_sq = np.zeros(n_out), np.zeros(n_out)
    for i in range(0, len(utts), batch_size):
        chunk = utts[i : i + batch_size]
        real = [frames_for_duration(len(u.audio) / 16000) for u in chunk]
        y, y_hat, codes = reconstruction(sae, lw, lw.log_mel([u.audio for u in chunk]), real)
        sse += float((y_hat - y).pow(2).sum())
        sq += float(y.double().pow(2).sum())
        sums = sums + y.double().sum(0)
        for j, (a, b) in enumerate(zip((y_hat - y).chunk(n_out, -1), y.double().chunk(n_out, -1))):
            part_sse[j] += float(a.pow(2).sum())
            part_sq[j] += float(b.pow(2).sum())
        n_rows += y.shape[0]
        l0 += int((codes > 0).sum())
        start = 0
        for u, n in zip(chunk, real):
            labeler.update(codes[start : start + n].numpy(), (np.arange(n) + 0.5) * FRAME_SECONDS, index.get(u.id))
            start += n
    result = labeler.result()
    alive = labeler.active > 0
    return {
        "ev_all": 1.0 - sse / max(sq - float(sums.pow(2).sum()) / max(n_rows, 1), 1e-12),
        # per output hook (a crosscoder's layers): EV of that slice alone
        "ev_per_hook": {
            h: 1.0 - part_sse[j] / max(part_sq[j] - float(part.pow(2).sum()) / max(n_rows, 1), 1e-12)
            for j, (h, part) in enumerate(zip(sae.cfg.output_hooks, sums.chunk(n_out, -1)))
        },
        "l0_all": l0 / max(n_rows, 1),
        "frames_all": n_rows,
        "phone": f1_summary(result["phone_f1"], alive),
        "word": f1_summary(result["word_f1"], alive),
        "label_frames": result["label_frames"],
        "top_phone_features": sorted(
            (
                {
                    "feature": int(f),
                    "phone": result["phone_vocab"][int(result["phone_label"][f])],
                    "f1": float(result["phone_f1"][f]),
                }
                for f in np.nonzero(alive)[0]
                if result["phone_label"][f] >= 0
            ),
            key=lambda r: -r["f1"],
        )[:10],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="store with encoder.blocks.B, .B.mlp_in, .B.mlp_out, B+1")
    parser.add_argument("--out", required=True, help="folder for the three dictionaries and circuits.json")
    parser.add_argument("--corpus", required=True, help="test speech with transcripts (other speakers)")
    parser.add_argument("--alignments", required=True, help="folder of <utterance id>.json alignments of --corpus")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--block", type=int, default=2)
    parser.add_argument("--width", type=int, default=1152)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--skip", action="store_true", help="give the transcoder a skip path")
    parser.add_argument("--stage", choices=["train", "eval", "all"], default="all")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--max-utterances", type=int, default=None, help="WER/CE on the first N test utterances (EV and labels: all)"
    )
    parser.add_argument("--only", default=None, help="evaluate this dictionary only (sae, transcoder, crosscoder)")
    parser.add_argument(
        "--clean-from",
        default=None,
        help="an eval.json of an earlier run on the same corpus: reuse its clean transcripts",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    store = ActivationStore(args.store)
    record = {
        "command": "python benchmarks/circuits.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False))
    }
    if args.stage in ("train", "all"):
        start, load = time.time(), os.getloadavg()[0]
        train_specs(
            store,
            specs(store, args.block, args.width, args.k, args.skip),
            out=out,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            device="cpu",
        )
        (out / "train_time.json").write_text(
            json.dumps({"wall_s": time.time() - start, "load_at_start": load, "load_at_end": os.getloadavg()[0]})
        )
    if args.stage in ("eval", "all"):
        lw = open_model(args.model, device="cpu")
        results = {}
        clean_texts = None
        if args.clean_from:
            clean_texts = [u["clean"]["text"] for u in json.loads(Path(args.clean_from).read_text())["utterances"]]
            clean_texts = clean_texts[: args.max_utterances]
        for name in [args.only] if args.only else ("sae", "transcoder", "crosscoder"):
            folder = out / name
            sae = load_pretrained(folder)
            held = json.loads((folder / "cfg.json").read_text())["whisper_sae"].get("training", {}).get("held_out")
            start, load = time.time(), os.getloadavg()[0]
            spliced = evaluate_replacement(
                sae,
                args.corpus,
                model=lw,
                max_utterances=args.max_utterances,
                out=folder / "eval-test",
                progress=True,
                clean_texts=clean_texts,
                transcribe_error_term=False,
            )
            lab = labels(sae, lw, args.corpus, args.alignments)
            results[name] = {
                "held_out_train_speakers": held,
                "test": {k: v for k, v in spliced.items() if k != "skipped"},
                "labels": lab,
                "eval_wall_s": time.time() - start,
                "load_at_start": load,
            }
            print(name, json.dumps(results[name]["test"]), json.dumps(lab["phone"]), flush=True)
        record.update(results=results)
        (out / (f"circuits-{args.only}.json" if args.only else "circuits.json")).write_text(
            json.dumps(record, indent=1)
        )
        print(table(results))


def table(results: dict) -> str:
    lines = [
        "| dictionary | EV (test) | L0 | WER clean / spliced / +error | CE clean / spliced (nats/token) | phone F1 median | F1>0.5 | alive |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        t, p = r["test"], r["labels"]["phone"]
        lines.append(
            f"| {name} ({', '.join(t['hooks_in'])} -> {', '.join(t['hooks_out'])}) | {r['labels']['ev_all']:.3f} | "
            f"{r['labels']['l0_all']:.1f} | "
            f"{t['clean']['wer']:.2%} / {t['spliced']['wer']:.2%} / {t['spliced_error']['wer']:.2%} | "
            f"{t['clean']['ce']:.3f} / {t['spliced']['ce']:.3f} | {p['median_f1']:.3f} | {p['f1>0.5']} | {p['n_alive']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

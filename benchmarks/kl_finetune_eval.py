"""Spliced evaluation of fine-tuned SAEs against the evaluation of their parent, reusing its SAE-independent rows.

``evaluate(..., baseline=...)`` takes clean, zero- and mean-ablation results from an earlier evaluation of the
same hook, model and utterances, so each fine-tuned SAE costs two conditions (spliced, spliced + error term)
instead of five. Used for benchmarks/results/kl-finetune.md:

    python benchmarks/kl_finetune_eval.py --baseline EVAL_DIR --corpus CORPUS SAE_DIR [SAE_DIR ...]

``--teacher-forced`` measures only what needs no generation (quick on a loaded CPU): per SAE, the
teacher-forced CE of the references with the SAE spliced in (real frames only) and KL(clean || spliced)
per token, through ``whisper_sae.sae.kl.SplicedWhisper`` (the code path the KL objective trains on).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def teacher_forced(saes: list[Path], corpus: str, batch: int = 4) -> None:
    import torch

    from whisper_sae.artifacts import open_model
    from whisper_sae.sae import SparseAutoencoder
    from whisper_sae.sae.kl import SplicedWhisper, token_kl
    from whisper_sae.sae.kl_training import load_items
    from whisper_sae.sae.train_config import KLConfig

    first = SparseAutoencoder.from_pretrained(saes[0]).eval()
    lw = open_model(None, sae=first, device="cpu")
    runner = SplicedWhisper(lw, first.cfg.hook_name)
    items, skipped, _ = load_items(lw, corpus, KLConfig())
    models = {str(p): SparseAutoencoder.from_pretrained(p).eval() for p in saes}
    sums = {name: {"nll": 0.0, "kl": 0.0} for name in ["clean", *models]}
    n_tokens = 0
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(items), batch):
            data = runner.prepare(items[i : i + batch])
            acts = runner.prefix(data)
            mask = runner.mask(data, acts)
            clean = runner.clean_logits(data, acts)
            targets = data.targets
            n = int(targets.numel())
            n_tokens += n
            sums["clean"]["nll"] += float(torch.nn.functional.cross_entropy(clean, targets, reduction="sum"))
            for name, sae in models.items():
                logits = runner.spliced_logits(data, acts, mask, sae.decode(sae.encode(acts[mask])))
                sums[name]["nll"] += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
                sums[name]["kl"] += float(token_kl(clean, logits)) * n
    print(
        f"{len(items)} utterances ({len(skipped)} skipped), {n_tokens} reference tokens, "
        f"{time.perf_counter() - start:.0f} s"
    )
    print("| SAE | CE spliced (nats/token) | CE clean | KL(clean || spliced) per token |")
    print("| --- | --- | --- | --- |")
    for name in models:
        print(
            f"| {name} | {sums[name]['nll'] / n_tokens:.4f} | {sums['clean']['nll'] / n_tokens:.4f} | "
            f"{sums[name]['kl'] / n_tokens:.4f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saes", nargs="+", type=Path)
    parser.add_argument("--baseline", type=Path, help="folder of the parent's eval.json")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--teacher-forced", action="store_true", help="CE and KL only, no transcription")
    args = parser.parse_args()
    if args.teacher_forced:
        return teacher_forced(args.saes, args.corpus)
    if args.baseline is None:
        parser.error("--baseline is needed unless --teacher-forced")
    from whisper_sae.evaluate import evaluate
    from whisper_sae.evaluate.result import load_eval_result

    baseline = load_eval_result(args.baseline)
    for sae in args.saes:
        start = time.perf_counter()
        result = evaluate(sae, args.corpus, baseline=baseline, device="cpu", progress=False)
        print(f"{sae}: {time.perf_counter() - start:.0f} s")
        print(result.table())


if __name__ == "__main__":
    main()

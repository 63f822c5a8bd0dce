"""``whisper-sae pretrained list|info|export`` (the SAEs that ship with the package) and ``whisper-sae push``
(publish an SAE folder on the Hugging Face Hub). Developers add shipped SAEs with ``scripts/ship_pretrained.py``."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrained",
        help="SAEs that ship with whisper-sae: list them, show a model card, copy one out",
        description="Shipped SAEs load by name wherever an SAE folder is taken (whisper-sae evaluate NAME ..., "
        "SparseAutoencoder.from_pretrained(NAME)); their default outputs go to ./whisper-sae-out/NAME/.",
    )
    sub = p.add_subparsers(dest="pretrained_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="table of the shipped SAEs")
    ls.set_defaults(func=run_list)
    info = sub.add_parser("info", help="print a shipped SAE's model card")
    info.add_argument("name", metavar="NAME", help="a shipped SAE name, e.g. tiny/encoder.out-original")
    info.set_defaults(func=run_info)
    export = sub.add_parser("export", help="copy a shipped SAE into a normal folder (to write results beside it)")
    export.add_argument("name", metavar="NAME", help="a shipped SAE name (`whisper-sae pretrained list`)")
    export.add_argument("out", metavar="DIR", help="folder to copy it into (a normal SAE folder you may write to)")
    export.set_defaults(func=run_export)

    push = subparsers.add_parser(
        "push",
        help="upload an SAE to the Hugging Face Hub (cfg.json, weights, model card)",
        description="Upload cfg.json, sae_weights.safetensors, LICENSE (if present) and a README.md model card (the "
        "folder's MODEL_CARD.md or README.md, else one written from cfg.json and eval.json) to ORG/REPO, "
        "creating the repository if needed. Log in first (`hf auth login`) or set HF_TOKEN. "
        "Load it back with SparseAutoencoder.from_pretrained('hf://ORG/REPO[/SUBDIR]').",
    )
    push.add_argument("sae_dir", metavar="SAE_DIR", help="SAE folder, shipped SAE name or hf:// SAE")
    push.add_argument("repo_id", metavar="ORG/REPO", help="Hub model repository")
    push.add_argument("--subdir", default=None, help="folder inside the repository (one repository can hold many SAEs)")
    push.add_argument(
        "--private", action="store_true", help="create the repository private (an existing one keeps its visibility)"
    )
    push.add_argument("--message", default=None, help="commit message")
    push.set_defaults(func=run_push)


def run_list(args: argparse.Namespace) -> int:
    from whisper_sae.pretrained import load_index

    rows = [("name", "model", "hook", "arch", "width", "L0", "data (hours / speakers)", "licence")]
    for name, e in sorted(load_index().items()):
        data = e.get("training_data") or {}
        l0 = (e.get("headline") or {}).get("l0")
        k = f" k={e['k']}" if e.get("k") else ""
        extent = f"{_num(data.get('hours'))} h / {_num(data.get('speakers'))}"
        rows.append(
            (
                name,
                str(e.get("model")),
                str(e.get("hook")),
                f"{e.get('architecture')}{k}",
                str(e.get("width")),
                "?" if l0 is None else f"{l0:g}",
                extent,
                str(e.get("licence")),
            )
        )
    if len(rows) == 1:
        print("no SAEs are shipped with this installation")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print("\nload one with SparseAutoencoder.from_pretrained(NAME); `whisper-sae pretrained info NAME` shows its card")
    return 0


def _num(value) -> str:
    return "?" if value is None else f"{value:g}"


def run_info(args: argparse.Namespace) -> int:
    from whisper_sae.pretrained import card

    print(card(args.name), end="")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from whisper_sae.pretrained import export

    print(f"copied {args.name} to {export(args.name, args.out)}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from whisper_sae.pretrained.hub import push

    spec = push(args.sae_dir, args.repo_id, subdir=args.subdir, private=args.private, message=args.message)
    print(f"pushed; load it with SparseAutoencoder.from_pretrained({spec!r})")
    return 0

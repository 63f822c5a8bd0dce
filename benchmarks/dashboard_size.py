"""Bytes on disk of whisper-sae dashboards: in all, per feature page (its HTML and clip media), by kind of file,
and projected for a dashboard of every feature of a wider SAE.

    python benchmarks/dashboard_size.py DASHBOARD_DIR [DASHBOARD_DIR ...] [--project 1536]

Compare two builds of the same SAE and analysis (e.g. one by an older checkout) to see what a format change
saves. The projection is (pages' HTML + clip media) per page times N, plus the index scaled from its rows.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def measure(folder: Path) -> dict:
    """Sizes (bytes) of one dashboard folder."""
    if not (folder / "index.html").is_file():
        raise FileNotFoundError(f"{folder} holds no index.html; give a folder written by `whisper-sae dashboard`")
    by_kind: dict[str, int] = defaultdict(int)
    for path in folder.rglob("*"):
        if path.is_file():
            by_kind[path.suffix.lstrip(".") or path.name] += path.stat().st_size
    pages = sorted(folder.glob("features/f*.html"))
    page_bytes = sum(p.stat().st_size for p in pages)
    clip_bytes = sum(p.stat().st_size for p in (folder / "clips").glob("*") if p.is_file())
    n_clips = len({p.stem for p in (folder / "clips").glob("*")})
    index = (folder / "index.html").stat().st_size
    html = (folder / "index.html").read_text(encoding="utf-8")
    start = html.index("const FEATURES = ") + len("const FEATURES = ")
    n_rows = len(json.loads(html[start : html.index(";const ATTRIBUTES", start)]))
    return {
        "total": sum(by_kind.values()),
        "pages": len(pages),
        "clips": n_clips,
        "per_page": (page_bytes + clip_bytes) / max(len(pages), 1),
        "index": index,
        "index_rows": n_rows,
        "by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboards", nargs="+", type=Path, help="dashboard folders to measure")
    parser.add_argument("--project", type=int, default=1536, help="features with a page in the projection")
    args = parser.parse_args(argv)
    mb = 1e6
    for folder in args.dashboards:
        m = measure(folder)
        projected = m["per_page"] * args.project + m["index"] * args.project / max(m["index_rows"], 1)
        kinds = ", ".join(f"{k} {v / mb:.2f}" for k, v in m["by_kind"].items())
        print(
            f"{folder}: {m['total'] / mb:.2f} MB, {m['pages']} pages, {m['clips']} clips, "
            f"{m['per_page'] / mb:.3f} MB per page (HTML + clips), projected {projected / mb:.0f} MB for "
            f"{args.project} pages; by kind (MB): {kinds}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

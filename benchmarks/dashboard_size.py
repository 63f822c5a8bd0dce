"""Bytes on disk of whisper-sae dashboards: in all, per feature page (its HTML and clip media), by kind of file,
and projected for a dashboard of every feature of a wider SAE.

    python benchmarks/dashboard_size.py DASHBOARD_DIR [DASHBOARD_DIR ...] [--project 1536]
    python benchmarks/dashboard_size.py --clips-from AUDIO_DIR [--n-clips 40] [--project 1536]

Compare two builds of the same SAE and analysis (e.g. one by an older checkout) to see what a format change
saves. The projection is (pages' HTML + clip media) per page times N, plus the index scaled from its rows.
``--clips-from`` needs no dashboard: it cuts 3-s excerpts from the first ``--n-clips`` audio files under a
folder and writes each clip's media both ways (16-bit WAV + RGBA PNG, the format before; Opus + WebP, the
format now), projecting the clip media of N pages of 5 clips.
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


def clip_media(folder: Path, n_clips: int, seconds: float = 3.0) -> dict:
    """Mean bytes per clip of each media format, over excerpts of the first audio files under ``folder``."""
    import tempfile

    from whisper_sae.analysis.dashboard import media
    from whisper_sae.audio import load_audio

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".flac", ".wav", ".ogg"))[:n_clips]
    if not files:
        raise FileNotFoundError(f"no .flac/.wav/.ogg files under {folder}")
    sizes: dict[str, int] = defaultdict(int)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for path in files:
            audio = load_audio(path)
            duration = len(audio) / 16000
            start, end = media.excerpt_bounds(duration / 2, duration, seconds)
            media.write_wav(out / "c.wav", audio, start, end)
            media.write_spectrogram_png(out / "c.png", audio, start, end)
            media.write_audio(out / "c.ogg", audio, start, end)
            media.write_spectrogram(out / "c.webp", audio, start, end)
            for name in ("c.wav", "c.png", "c.ogg", "c.webp"):
                sizes[name[2:]] += (out / name).stat().st_size
    return {k: v / len(files) for k, v in sizes.items()} | {"n": len(files)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboards", nargs="*", type=Path, help="dashboard folders to measure")
    parser.add_argument("--project", type=int, default=1536, help="features with a page in the projection")
    parser.add_argument("--clips-from", type=Path, default=None, help="measure clip media on audio files here")
    parser.add_argument("--n-clips", type=int, default=40, help="audio files to cut a clip from (--clips-from)")
    args = parser.parse_args(argv)
    mb = 1e6
    if args.clips_from is not None:
        c = clip_media(args.clips_from, args.n_clips)
        for name, keys in (("before (WAV + PNG)", ("wav", "png")), ("now (Opus + WebP)", ("ogg", "webp"))):
            per_clip = sum(c[k] for k in keys)
            parts = ", ".join(f"{k} {c[k] / 1e3:.1f} kB" for k in keys)
            print(
                f"{name}: {per_clip / 1e3:.1f} kB per 3-s clip ({parts}; mean of {c['n']}), "
                f"{5 * per_clip / mb:.3f} MB per page of 5 clips, {5 * per_clip * args.project / mb:.0f} MB "
                f"of clip media for {args.project} pages"
            )
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

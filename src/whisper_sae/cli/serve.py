"""``whisper-sae serve``: the interactive page (upload or record a clip, see its features, steer them)."""

from __future__ import annotations

import argparse

from whisper_sae.cli import common


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="interactive web page: upload or record audio, see its SAE features over time, ablate/clamp/scale them",
        description=(
            "A local web server (FastAPI + uvicorn; pip install 'whisper-sae[serve]') with one page: upload a clip "
            "or record one in the browser, see its spectrogram, Whisper's transcript with word times and the top "
            "SAE features over time (with their phone/word/speaker labels where an analysis or probe exists), pick "
            "features and a time range and ablate, clamp or scale them; Whisper re-transcribes with the edit "
            "(as `whisper-sae intervene` does) and the page shows the word diff. Listens on 127.0.0.1 unless "
            "--host says otherwise."
        ),
    )
    p.add_argument(
        "sae",
        nargs="+",
        metavar="SAE",
        help="SAE folder(s) or shipped name(s) (whisper-sae pretrained list), e.g. tiny/encoder.out-original",
    )
    common.add_model(p, default_help="the model named in the first SAE's cfg.json")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (8765; 0 picks a free one)")
    p.add_argument(
        "--corpus",
        default=None,
        help="corpus spec whose clips the page can load by utterance id (first --max-utterances)",
    )
    p.add_argument("--store", default=None, help="activation store whose recorded corpus the page can load clips from")
    common.add_max_utterances(p, help="utterances of --corpus/--store offered (default 500)")
    p.add_argument(
        "--dashboard",
        action="append",
        default=None,
        metavar="[SAE=]DIR",
        help="static dashboard folder of an SAE (`whisper-sae dashboard --out DIR`); feature rows link to its pages. "
        "SAE= names which SAE when several are served; repeat for several",
    )
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload accepted, in MB (20)")
    p.add_argument("--max-seconds", type=float, default=30.0, help="longest clip accepted, in seconds (30, at most 30)")
    p.set_defaults(func=run_serve)


def _dashboards(values: list[str] | None, saes: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        name, sep, folder = value.partition("=")
        if not sep:
            if len(saes) > 1:
                raise ValueError(f"--dashboard {value}: several SAEs are served; write SAE=DIR, e.g. {saes[0]}={value}")
            name, folder = saes[0], value
        out[name] = folder
    return out


def run_serve(args: argparse.Namespace) -> int:
    from whisper_sae.serve import check_installed

    check_installed()
    if not 0 < args.max_seconds <= 30:
        raise ValueError(f"--max-seconds {args.max_seconds:g} must be in (0, 30]: Whisper's window holds 30 s")
    if args.max_upload_mb <= 0:
        raise ValueError(f"--max-upload-mb {args.max_upload_mb:g} must be above 0")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} must be 0..65535")
    from whisper_sae.serve.server import ServeOptions, build_session, run

    options = ServeOptions(
        saes=list(args.sae),
        model=args.model,
        corpus=args.corpus,
        store=args.store,
        max_utterances=args.max_utterances or 500,
        dashboards=_dashboards(args.dashboard, list(args.sae)),
        max_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_seconds=args.max_seconds,
    )
    run(build_session(options), host=args.host, port=args.port)
    return 0

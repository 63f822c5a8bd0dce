"""The FastAPI application: the page (``static/``), a JSON API over a ``Session``, and dashboards.

Routes (JSON unless said otherwise; errors are ``{"error": sentence}`` with a 4xx status):

- ``GET /``: the page; ``GET /static/...``: its script and style (package data).
- ``GET /api/info``: model, SAEs (name, hook, features, analysis, dashboard), limits.
- ``POST /api/clips`` (multipart ``file``, optional ``reference``): upload a clip; returns its view.
- ``POST /api/clips/corpus`` (``{"id"}``): a clip of the server's corpus; ``GET /api/corpus?q=``: its ids.
- ``GET /api/clips/{id}``: the view again; ``GET /api/clips/{id}/audio``: the clip as 16-bit WAV.
- ``GET /api/clips/{id}/features?sae=&hook=&top=``: the top features over time.
- ``POST /api/clips/{id}/edit`` (``{"edits": [...], "reference"}``): the transcript with the edits.
- ``GET /dashboard/{i}/...``: the static dashboard of the i-th SAE, when one was given.

Only those folders are served (Starlette's StaticFiles refuses paths that leave them); user text never
goes into HTML on the server, and the page writes it with ``textContent``.
"""

from __future__ import annotations

import io
import logging
from importlib import resources

import numpy as np
import soundfile as sf
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from whisper_sae.audio.constants import SAMPLE_RATE

from .session import RequestError, Session

logger = logging.getLogger(__name__)


def static_dir():
    return resources.files("whisper_sae.serve") / "static"


def byte_range(data: bytes, header: str | None, media_type: str) -> Response:
    """``data``, or the part a ``Range: bytes=a-b`` header asks for (206): browsers seek in audio only when
    the server answers ranges."""
    headers = {"Accept-Ranges": "bytes"}
    size = len(data)
    if not header or not header.startswith("bytes=") or "," in header:
        return Response(data, media_type=media_type, headers=headers)
    first, _, last = header[len("bytes=") :].strip().partition("-")
    try:
        if first:
            start, end = int(first), (int(last) if last else size - 1)
        else:
            start, end = max(0, size - int(last)), size - 1
    except ValueError:
        return Response(data, media_type=media_type, headers=headers)
    end = min(end, size - 1)
    if start > end or start >= size:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(data[start : end + 1], status_code=206, media_type=media_type, headers=headers)


def create_app(session: Session) -> FastAPI:
    app = FastAPI(title="whisper-sae serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.session = session
    static = static_dir()

    @app.exception_handler(RequestError)
    async def request_error(_request: Request, err: RequestError):
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, err: RequestValidationError):
        parts = []
        for e in err.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return JSONResponse({"error": "bad request: " + "; ".join(parts)}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, err: Exception):
        logger.exception("request failed")
        return JSONResponse(
            {"error": f"the server failed on this request: {type(err).__name__}: {err}"}, status_code=500
        )

    @app.middleware("http")
    async def upload_limit(request: Request, call_next):
        """Refuse an upload whose declared size is over the limit before reading its body."""
        if request.method == "POST" and request.url.path == "/api/clips":
            declared = request.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > session.limits.max_bytes + 64 * 1024:
                mb = session.limits.max_bytes / 1e6
                return JSONResponse(
                    {
                        "error": f"upload of {int(declared) / 1e6:.1f} MB is over this server's limit of {mb:.1f} MB (--max-upload-mb)"
                    },
                    status_code=413,
                )
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.get("/")
    def index():
        return FileResponse(str(static / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    for entry in session.saes.values():
        if entry.dashboard is not None:
            app.mount(entry.dashboard_url.rstrip("/"), StaticFiles(directory=str(entry.dashboard), html=True))

    @app.get("/api/info")
    def info():
        return session.info()

    @app.post("/api/clips")
    async def upload(file: UploadFile = File(...), reference: str | None = Form(None)):
        limit = session.limits.max_bytes
        data = await file.read(limit + 1)
        name = file.filename or "upload"
        if len(data) > limit:
            raise RequestError(
                f"file {name!r} is over this server's limit of {limit / 1e6:.1f} MB (--max-upload-mb)", 413
            )
        audio = await run_in_threadpool(session.read_upload, data, name)
        clip = await run_in_threadpool(session.add_clip, audio, name, reference)
        return await run_in_threadpool(session.clip_view, clip)

    @app.post("/api/clips/corpus")
    def from_corpus(body: dict):
        clip = session.clip_from_corpus(str(body.get("id", "")))
        return session.clip_view(clip)

    @app.get("/api/corpus")
    def corpus(q: str = ""):
        return {"utterances": session.corpus_ids(q)}

    @app.get("/api/clips/{clip_id}")
    def clip_view(clip_id: str):
        return session.clip_view(session.clip(clip_id))

    @app.get("/api/clips/{clip_id}/audio")
    def clip_audio(clip_id: str, request: Request):
        clip = session.clip(clip_id)
        buf = io.BytesIO()
        sf.write(buf, np.clip(clip.audio, -1, 1), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        return byte_range(buf.getvalue(), request.headers.get("range"), "audio/wav")

    @app.get("/api/clips/{clip_id}/features")
    def features(clip_id: str, sae: str | None = None, hook: str | None = None, top: int = 12):
        return session.features(session.clip(clip_id), sae, hook, top)

    @app.post("/api/clips/{clip_id}/edit")
    def edit(clip_id: str, body: dict):
        clip = session.clip(clip_id)
        reference = body.get("reference")
        if reference is not None and not isinstance(reference, str):
            raise RequestError("reference must be a string (the words spoken in the clip)", 422)
        return session.edit(clip, body.get("edits", []), reference)

    return app

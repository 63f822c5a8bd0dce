"""Building the session from command-line options, and running uvicorn (in the foreground, or in a
thread for tests and benchmarks)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .session import Limits, Session, load_corpus_index, load_saes

logger = logging.getLogger(__name__)


@dataclass
class ServeOptions:
    saes: list[str]
    model: str | None = None
    corpus: str | None = None
    store: str | None = None
    max_utterances: int = 500
    dashboards: dict[str, str] = field(default_factory=dict)
    max_bytes: int = 20 * 1024 * 1024
    max_seconds: float = 30.0


def build_session(options: ServeOptions, lw=None) -> Session:
    """Load the model (``lw`` when given), the SAEs with their analyses, and the corpus index."""
    from whisper_sae.artifacts import open_model, open_sae

    if not options.saes:
        raise ValueError("give at least one SAE (a folder or a shipped name such as tiny/encoder.out-original)")
    if lw is None:
        first, _ = open_sae(options.saes[0])
        lw = open_model(options.model, sae=first)
    saes = load_saes(options.saes, lw, dashboards=options.dashboards)
    corpus = load_corpus_index(options.corpus, options.store, options.max_utterances)
    limits = Limits(max_bytes=options.max_bytes, max_seconds=options.max_seconds)
    spec = options.model or getattr(lw, "name", None)
    return Session(lw, saes, limits=limits, corpus=corpus, model_spec=spec)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); a busy port is a sentence naming it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port} ({err.strerror}); pick another --port or --host") from None
    sock.listen(64)
    return sock


def _server(session: Session, sock: socket.socket):
    import uvicorn

    from .app import create_app

    config = uvicorn.Config(create_app(session), log_level="warning", access_log=False)
    return uvicorn.Server(config), sock


def run(session: Session, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until Ctrl-C."""
    sock = bind(host, port)
    server, _ = _server(session, sock)
    shown = sock.getsockname()[1]
    print(f"whisper-sae serve: http://{host if ':' not in host else f'[{host}]'}:{shown}/ (Ctrl-C stops)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s: anyone who can reach this address can use the page", host)
    server.run(sockets=[sock])


@contextlib.contextmanager
def serving(session: Session, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run the app in a background thread; yields its base URL and stops it on exit."""
    sock = bind(host, port)
    server, _ = _server(session, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("the test server did not start within 30 s")
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

"""``whisper-sae serve``: an interactive page over one Whisper and one or more SAEs.

Upload or record a clip (or pick one from a corpus), see its spectrogram, Whisper's transcript with word
times and the SAE features active over time, then ablate, clamp or scale features over a time range and
read the new transcript as a word diff. Edits go through ``whisper_sae.analysis.interventions`` (the
code path of ``whisper-sae intervene``), so the app and the command give the same transcript.

- ``session``: the server's state (model, SAEs, clips) and everything it computes, without HTTP.
- ``app``: the FastAPI application (JSON API + the static page in ``static/``).

The web parts need the ``serve`` extra (``pip install 'whisper-sae[serve]'``: fastapi, uvicorn,
python-multipart); ``session`` does not.
"""

from __future__ import annotations

INSTALL_HINT = "whisper-sae serve needs FastAPI and uvicorn: pip install 'whisper-sae[serve]'"


def check_installed() -> None:
    """Raise a RuntimeError with the install command when fastapi, uvicorn or python-multipart is missing."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join("python-multipart" if m == "multipart" else m for m in missing)
        raise RuntimeError(f"{INSTALL_HINT} (missing: {names})")

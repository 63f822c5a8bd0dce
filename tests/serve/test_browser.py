"""The real server in headless Chromium with real tiny.en and the shipped SAE: upload a spoken clip, see its
features, ablate one over a dragged range, get the transcript `whisper-sae intervene` gives for the same
edit; record a clip through Chromium's fake microphone and get its transcript."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
MARGIN_LEFT = 56  # app.js: px left of time 0 on the canvases

pytestmark = pytest.mark.slow


def _playwright():
    pw = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return pw


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """The sentence spoken by eSpeak NG, as a 16-kHz 16-bit WAV file (with 0.3 s of silence around it)."""
    from whisper_sae.audio import resample
    from whisper_sae.audio.synth.espeak import engine

    tts = engine()
    audio, _ = tts.synthesize(SENTENCE, "en-us")
    audio = resample(audio.astype(np.float32) / 32768, tts.sample_rate)
    pad = np.zeros(4800, np.float32)
    path = tmp_path_factory.mktemp("speech") / "fox.wav"
    sf.write(path, np.concatenate([pad, audio, pad]), 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def server(speech):
    from whisper_sae.serve.server import ServeOptions, build_session, serving
    from whisper_sae.whisper import load_whisper

    lw = load_whisper("tiny.en")
    session = build_session(ServeOptions(saes=["tiny/encoder.out-original"], model="tiny.en"), lw=lw)
    with serving(session) as base:
        yield base, session


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _ablation_that_changes(session, audio) -> tuple[int, float, float]:
    """A feature whose ablation over the spoken part (after the 0.3-s pads) changes the transcript: the
    features contributing most there (activation x decoder norm, summed over frames) are tried in order."""
    import torch

    from whisper_sae.whisper import encode_clips

    clip = session.add_clip(audio, "search.wav")
    entry = session.sae(None)
    with torch.no_grad():
        codes = entry.sae.encode(encode_clips(session.lw, [audio], entry.hook)[0].float())
        score = (codes * entry.sae.W_dec.norm(dim=1)[None]).sum(0)
    t0, t1 = 0.3, round(clip.duration - 0.3, 2)
    for f in torch.argsort(-score)[:8].tolist():
        if session.edit(clip, [{"features": [f], "t0": t0, "t1": t1}])["changed"]:
            return f, t0, t1
    pytest.fail("ablating none of the 8 features contributing most to the speech changed the transcript")


def _x(page, t: float, seconds: float) -> tuple[float, float]:
    box = page.locator("#spectrogram").bounding_box()
    width = page.evaluate("document.getElementById('spectrogram').width")
    x = MARGIN_LEFT + t / seconds * (width - MARGIN_LEFT - 4)
    return box["x"] + x * box["width"] / width, box["y"] + box["height"] / 3


def test_upload_see_features_ablate_over_a_range(server, speech, tmp_path):
    from whisper_sae.analysis import intervene, parse_frames
    from whisper_sae.audio import load_audio
    from whisper_sae.cli import build_parser

    base, session = server
    audio = load_audio(speech)
    feature, t0, t1 = _ablation_that_changes(session, audio)
    seconds = len(audio) / 16000
    pw = _playwright()
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors, dialogs = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(base + "/")
        page.set_input_files("#file-input", str(speech))
        page.wait_for_selector("#features tbody tr", timeout=180_000)
        assert page.locator("#features tbody tr").count() == 16
        clean = page.locator("#transcript").inner_text()
        assert len(_words(clean) & _words(SENTENCE)) >= 5, clean
        assert page.locator("#transcript span.word").count() >= 8  # words with times
        # the spectrogram is drawn, and a click seeks the audio there
        drawn = page.evaluate(
            "(() => { const c = document.getElementById('spectrogram');"
            " const d = c.getContext('2d').getImageData(100, 10, 50, 50).data;"
            " let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2]; return s; })()"
        )
        assert drawn > 0
        page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=60_000)
        page.mouse.click(*_x(page, 1.0, seconds))
        assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(1.0, abs=0.05)
        # ticking rows fills the feature box; the feature to ablate is then typed (it may rank below the table)
        rows = page.locator("#features tbody tr")
        first, second = rows.nth(0).get_attribute("data-feature"), rows.nth(1).get_attribute("data-feature")
        rows.nth(0).locator("input.pick").check()
        rows.nth(1).locator("input.pick").check()
        assert page.input_value("#feature-ids") == f"{first},{second}"
        page.fill("#feature-ids", str(feature))
        # drag the range on the spectrogram, ablate
        page.mouse.move(*_x(page, t0, seconds))
        page.mouse.down()
        page.mouse.move(*_x(page, (t0 + t1) / 2, seconds), steps=4)
        page.mouse.move(*_x(page, t1, seconds), steps=4)
        page.mouse.up()
        dragged = (float(page.input_value("#t0")), float(page.input_value("#t1")))
        assert dragged == pytest.approx((t0, t1), abs=0.03)
        page.select_option("#mode", "ablate")
        page.click("#add-edit")
        page.wait_for_selector("#result:not([hidden])", timeout=180_000)
        assert page.get_attribute("#diff", "data-changed") == "true"
        assert page.locator("#diff .del, #diff .ins").count() >= 1
        edited = page.locator("#edited-text").text_content()
        command = page.locator("#command").text_content().strip()
        # the command shown is the same edit: run it through the CLI's parser and the library function
        argv = shlex.split(command)
        assert argv[:2] == ["whisper-sae", "intervene"]
        args = build_parser().parse_args(argv[1:])
        assert args.feature == str(feature) and args.mode == "ablate"
        result = intervene(
            session.sae(None).sae,
            session.lw,
            [audio],
            int(args.feature),
            args.mode,
            args.value,
            parse_frames(args.frames),
        )[0]
        assert (result.before, result.after) == (clean.strip(), edited)
        assert result.before != result.after
        # undo empties the stack
        page.click("#undo")
        page.wait_for_selector("#result", state="hidden")
        assert page.locator("#edits li").count() == 0
        # a file name with markup is shown as text
        evil = tmp_path / "<img src=x onerror=alert(1)>.wav"
        evil.write_bytes(speech.read_bytes())
        page.set_input_files("#file-input", str(evil))
        page.wait_for_function("document.getElementById('clip-name').textContent.includes('onerror')", timeout=180_000)
        assert page.locator("#clip-name").text_content() == evil.name
        assert page.locator("#clip img, #clip script").count() == 0
        # a feature id out of range: a clear message, and the page keeps working
        page.fill("#feature-ids", "5000")
        page.click("#add-edit")
        page.wait_for_selector("#message:not([hidden])", timeout=180_000)
        assert "feature 5000 is out of range" in page.locator("#message").text_content()
        assert page.locator("#edits li").count() == 0
        browser.close()
    assert not errors and not dialogs, (errors, dialogs)


def test_record_with_the_fake_microphone(server, speech):
    base, _ = server
    pw = _playwright()
    args = ARGS + [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech}",
    ]
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        context = browser.new_context()
        context.grant_permissions(["microphone"], origin=base)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        page.click("#record-btn")
        page.wait_for_function("document.getElementById('record-btn').textContent.includes('Stop')")
        page.wait_for_timeout(4500)
        page.click("#record-btn")
        page.wait_for_function("document.getElementById('clip-name').textContent === 'recording.wav'", timeout=180_000)
        page.wait_for_selector("#features tbody tr", timeout=180_000)
        seconds = float(page.locator("#clip-seconds").text_content().split()[0])
        transcript = page.locator("#transcript").inner_text()
        browser.close()
    assert 3.0 < seconds < 8.0, seconds
    assert len(_words(transcript) & _words(SENTENCE)) >= 3, transcript
    assert not errors, errors

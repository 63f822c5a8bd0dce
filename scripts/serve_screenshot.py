"""A screenshot of the `whisper-sae serve` page on a real clip, for the README.

    python scripts/serve_screenshot.py AUDIO --out docs/serve.png [--sae tiny/encoder.out-original] [--model tiny.en]
                                       [--reference "WORDS SPOKEN"]

Starts the server in this process (loopback, a free port), opens the page in headless Chromium, uploads
AUDIO, waits for the features, ablates the clip's strongest feature over the second around its peak (a drag
on the spectrogram, as a person would), and writes a full-page PNG. Run it from the folder where the SAE's
analysis lives (./whisper-sae-out/NAME/analysis for a shipped SAE) for the labels to show.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
MARGIN_LEFT = 56  # app.js: px left of time 0 on the canvases


def screenshot(
    audio: Path, out: Path, *, sae: str, model: str, reference: str | None, executable: str = "/usr/bin/chromium"
) -> Path:
    from playwright.sync_api import sync_playwright

    from whisper_sae.serve.server import ServeOptions, build_session, serving

    session = build_session(ServeOptions(saes=[sae], model=model))
    with serving(session) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(base + "/")
        if reference:
            page.fill("#reference", reference)
        page.set_input_files("#file-input", str(audio))
        page.wait_for_selector("#features tbody tr", timeout=600_000)
        first = page.locator("#features tbody tr").first
        peak = float(first.locator("td").nth(3).text_content())
        first.locator("input.pick").check()
        seconds = float(page.locator("#clip-seconds").text_content().split()[0])
        box = page.locator("#spectrogram").bounding_box()
        width = page.evaluate("document.getElementById('spectrogram').width")

        def x(t):
            return box["x"] + (MARGIN_LEFT + t / seconds * (width - MARGIN_LEFT - 4)) * box["width"] / width

        y = box["y"] + box["height"] / 3
        page.mouse.move(x(max(0.0, peak - 0.5)), y)
        page.mouse.down()
        page.mouse.move(x(min(seconds, peak + 0.5)), y, steps=5)
        page.mouse.up()
        page.click("#add-edit")
        page.wait_for_selector("#result:not([hidden])", timeout=600_000)
        page.evaluate(f"(() => {{ const p = document.getElementById('player'); p.currentTime = {peak:.3f}; }})()")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot of the whisper-sae serve page on one clip.")
    parser.add_argument("audio", type=Path, help="clip to upload (at most 30 s)")
    parser.add_argument("--out", type=Path, default=Path("docs/serve.png"), help="PNG to write")
    parser.add_argument("--sae", default="tiny/encoder.out-original", help="SAE folder or shipped name")
    parser.add_argument("--model", default="tiny.en", help="Whisper model spec")
    parser.add_argument("--reference", default=None, help="the words spoken, for the CE change")
    parser.add_argument("--executable", default="/usr/bin/chromium", help="Chromium binary")
    args = parser.parse_args(argv)
    if not args.audio.is_file():
        print(f"{args.audio}: no such audio file", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    written = screenshot(
        args.audio, args.out, sae=args.sae, model=args.model, reference=args.reference, executable=args.executable
    )
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

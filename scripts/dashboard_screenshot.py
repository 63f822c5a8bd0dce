"""Screenshots of a whisper-sae dashboard in headless Chromium, for people (and the README).

    python scripts/dashboard_screenshot.py DASHBOARD_DIR --out docs/dashboard.png [--feature N] [--index-out PNG]
                                           [--attribute gender]   # index filtered to gender-selective features
                                           [--seek 0.5]           # first clip's playhead halfway

Opens DASHBOARD_DIR/index.html from disk (no server), and one feature page (the first linked one,
or --feature N), waits for the audio elements to load, and writes full-page PNGs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def screenshot(
    dashboard: Path,
    out: Path,
    *,
    feature: int | None = None,
    index_out: Path | None = None,
    attribute: str | None = None,
    executable: str = "/usr/bin/chromium",
    width: int = 1200,
    seek: float | None = None,
) -> list[Path]:
    from playwright.sync_api import sync_playwright

    index = (dashboard / "index.html").resolve()
    if not index.is_file():
        raise FileNotFoundError(f"{index} does not exist; build it with `whisper-sae dashboard SAE_DIR --out DIR`")
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(index.as_uri())
        if attribute is not None:  # the index's speaker-attribute filter (a probe.json must be in the dashboard)
            page.select_option("#attr", attribute)
        if index_out is not None:
            page.screenshot(path=str(index_out), full_page=False)
            written.append(index_out)
        if feature is None:
            page.locator("#features tbody tr a").first.click()
        else:
            page.goto((dashboard / "features" / f"f{feature}.html").resolve().as_uri())
        page.wait_for_load_state("load")
        page.wait_for_function(
            "Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1)", timeout=20000
        )
        if seek is not None:  # show the playhead: the first clip's audio seeked to this fraction
            page.evaluate(
                "f => { const a = document.querySelector('.clip[data-start] audio'); if (a) a.currentTime = f * a.duration; }",
                seek,
            )
            page.wait_for_timeout(200)
        page.screenshot(path=str(out), full_page=True)
        written.append(out)
        browser.close()
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    parser.add_argument("--feature", type=int, default=None)
    parser.add_argument("--index-out", type=Path, default=None)
    parser.add_argument("--attribute", default=None, help="filter the index to features selective for this attribute")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable Playwright drives")
    parser.add_argument(
        "--seek", type=float, default=None, help="seek the first clip to this fraction (0-1) so its playhead shows"
    )
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for path in screenshot(
        args.dashboard,
        args.out,
        feature=args.feature,
        index_out=args.index_out,
        attribute=args.attribute,
        executable=args.chromium,
        seek=args.seek,
    ):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

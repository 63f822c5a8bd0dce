"""The static dashboard: files, escaping, and (in a real headless Chromium) sorting, clips and audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.analysis import analyze, build_dashboard
from whisper_sae.analysis.dashboard.build import page_features
from whisper_sae.analysis.dashboard.render import js_literal
from whisper_sae.analysis.probing import ProbeOptions, probe

from ..conftest import aligned_utterances, make_sae, voices

EVIL = '<script>alert("x")</script>&'
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def dashboard(analysis_whisper, tmp_path_factory):
    lw, sae = analysis_whisper, make_sae()
    utts = aligned_utterances(durations=(1.0, 2.3, 0.7, 1.6))
    utts[1].id = "clip1" + EVIL
    utts[1].text = "hi " + EVIL
    utts[1].alignment["words"][0]["word"] = EVIL
    result = analyze(sae, utts, model=lw, top_n=3, progress=False)
    probed = probe(
        None, voices(), ["gender", "rate"], out=tmp_path_factory.mktemp("probe"), sae=sae, lw=lw, options=QUICK_PROBE
    )
    out = tmp_path_factory.mktemp("dash")
    index = build_dashboard(
        sae,
        out,
        analysis=result,
        corpus=utts,
        model=lw,
        max_features=6,
        clips_per_feature=3,
        excerpt_seconds=1.0,
        probe=probed.out,
        attribute_pages=3,
        progress=False,
    )
    return index, result, utts, probed


QUICK_PROBE = ProbeOptions(
    ks=(1,), models=("logreg",), ablate_k=0, wer_utterances=0, frames_per_utterance=4, tsne=False, progress=False
)


def _features_literal(index: Path) -> list[dict]:
    import json

    html = index.read_text()
    start = html.index("const FEATURES = ") + len("const FEATURES = ")
    return json.loads(html[start : html.index(";const ATTRIBUTES", start)])


def test_pages_clips_and_audio_files(dashboard):
    index, result, utts, probed = dashboard
    out = index.parent
    pages = sorted(out.glob("features/f*.html"))
    extra = set(_top(probed, "gender", 3) + _top(probed, "rate", 3)) - set(page_features(result, max_features=6))
    assert len(pages) == 6 + len({f for f in extra if result.arrays["fire_count"][f] > 0})
    clips = sorted(out.glob("clips/*.ogg"))
    assert clips and len(clips) == len(list(out.glob("clips/*.webp")))
    assert not list(out.glob("clips/*.wav")) and not list(out.glob("clips/*.png"))
    for clip in clips:
        info = sf.info(clip)
        assert (info.format, info.subtype) == ("OGG", "OPUS")
        audio, sr = sf.read(clip)  # decodes: Opus is lossy, so the 0.9 peak comes back only roughly
        assert sr == 16000 and 0 < len(audio) <= 16000 and 0.5 < np.abs(audio).max() <= 1.0
    html = pages[0].read_text()
    assert html.count('class="clip"') >= 1 and "<audio" in html and "Activation density" in html


def _top(probed, attribute: str, n: int) -> list[int]:
    score = np.asarray(probed.attributes[attribute]["selectivity"]["score"])
    return [int(f) for f in np.argsort(-score, kind="stable")[:n]]


def test_pages_and_index_show_attribute_selectivity(dashboard):
    """The most gender- and rate-selective features get pages whose table repeats probe.json's numbers,
    and every index row carries each attribute's score, preferred class and q."""
    index, result, _, probed = dashboard
    sel = probed.attributes["gender"]["selectivity"]
    for rank, f in enumerate(_top(probed, "gender", 3), start=1):
        if result.arrays["fire_count"][f] == 0:
            continue
        html = (index.parent / "features" / f"f{f}.html").read_text()
        row = html[html.index('<tr data-attribute="gender"') :]
        row = row[: row.index("</tr>")]
        direction = f"{'lower' if sel['auroc'][f] < 0.5 else 'higher'} in {sel['class'][f]}"
        assert f'<td class="num">{sel["score"][f]:.3f}</td>' in row and f"<td>{direction}</td>" in row
        assert f"{sel['auroc'][f]:.3f}" in row and f"{rank} of 48" in row
        assert '<tr data-attribute="rate"' in html and "Speaker attributes" in html
    rows = _features_literal(index)
    assert len(rows) == result.d_sae
    for f in (0, 17, 47):
        assert rows[f]["sel:gender"] == pytest.approx(sel["score"][f], abs=1e-5)
        assert rows[f]["cls:gender"] == sel["class"][f] and rows[f]["q:gender"] == pytest.approx(sel["q"][f], abs=1e-5)
        assert rows[f]["low:gender"] == (sel["auroc"][f] < 0.5)
        rho = probed.attributes["rate"]["selectivity"]["rho"][f]
        assert rows[f].get("cls:rate") == ("higher" if rho > 0 else "lower" if rho < 0 else None)


def test_probe_of_another_sae_is_refused_before_anything_is_written(dashboard, tmp_path):
    import json

    index, result, utts, probed = dashboard
    doc = json.loads((probed.out / "probe.json").read_text())
    doc["sae"]["d_sae"] = 96
    wrong = tmp_path / "wrong" / "probe.json"
    wrong.parent.mkdir()
    wrong.write_text(json.dumps(doc))
    with pytest.raises(
        ValueError, match=r"wrong/probe.json was made on an SAE of 96 features; this dashboard's SAE has 48"
    ):
        build_dashboard(make_sae(), tmp_path / "site", analysis=result, corpus=utts, probe=wrong.parent, progress=False)
    with pytest.raises(FileNotFoundError, match="no probe.json at"):
        build_dashboard(make_sae(), tmp_path / "site", analysis=result, corpus=utts, probe=tmp_path, progress=False)
    assert not (tmp_path / "site").exists()


def test_every_data_string_is_escaped(dashboard):
    index, _, _, _ = dashboard
    texts = [index.read_text()] + [p.read_text() for p in index.parent.glob("features/*.html")]
    assert all('<script>alert("x")' not in t for t in texts)
    assert any("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in t for t in texts)
    assert "\\u003cscript\\u003e" in js_literal({"id": EVIL}) and "</" not in js_literal(["</script>"])


def _browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return playwright


@pytest.mark.slow
def test_dashboard_in_headless_chromium(dashboard):
    index, result, _, probed = dashboard
    pw = _browser()
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        errors, dialogs = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(index.as_uri())
        rows = page.locator("#features tbody tr")
        assert rows.count() == result.d_sae
        # A feature without a page says why; a phone label mapped from IPA shows the IPA on hover.
        reasons = {r["feature"]: r.get("reason") for r in _features_literal(index)}
        nopage = page.locator("#features tbody tr.nopage").first
        cell = nopage.locator('td[data-key="page"]').text_content()
        assert cell == reasons[int(nopage.get_attribute("data-feature"))]
        assert page.locator('#features tbody td[data-key="phone"][title]').first.get_attribute("title") in (
            "eSpeak IPA /s/",
            "eSpeak IPA /a/",
        )
        # Sort by max activation: descending on the first click, ascending on the second.
        page.click('th[data-key="max_act"]')
        shown = [
            int(x) for x in page.locator("#features tbody tr").evaluate_all("rows => rows.map(r => r.dataset.feature)")
        ]
        expected = sorted(range(result.d_sae), key=lambda f: (-round(float(result.arrays["max_act"][f]), 6), f))
        assert shown == expected
        page.click('th[data-key="max_act"]')
        first = int(page.locator("#features tbody tr").first.get_attribute("data-feature"))
        assert round(float(result.arrays["max_act"][first]), 6) == round(float(result.arrays["max_act"].min()), 6)
        # Search by label keeps only features whose phone or word label contains it.
        page.fill("#search", "there")
        labels = page.locator('#features tbody td[data-key="word"]').all_text_contents()
        phones = page.locator('#features tbody td[data-key="phone"]').all_text_contents()
        assert labels and all("there" in w or "there" in ph for w, ph in zip(labels, phones))
        page.fill("#search", "")
        # Filter to gender-selective features: most selective first, only those passing score and q.
        sel = probed.attributes["gender"]["selectivity"]
        score, q, cls = np.asarray(sel["score"]), np.asarray(sel["q"]), sel["class"]

        def shown():
            return [
                int(x)
                for x in page.locator("#features tbody tr").evaluate_all("rows => rows.map(r => r.dataset.feature)")
            ]

        page.select_option("#attr", "gender")
        expected = [f for f in np.argsort(-np.round(score, 5), kind="stable").tolist() if q[f] < 0.05]
        assert expected and shown() == expected
        page.uncheck("#significant")
        page.fill("#min-sel", "0.5")
        expected = [f for f in np.argsort(-np.round(score, 5), kind="stable").tolist() if round(score[f], 5) >= 0.5]
        assert expected and shown() == expected
        page.select_option("#attr-class", "male")
        assert shown() == [f for f in expected if cls[f] == "male"]
        cell = page.locator(
            f'#features tbody tr[data-feature="{expected[0]}"] td[data-key="sel:gender"]'
        ).text_content()
        low = "↓" if sel["auroc"][expected[0]] < 0.5 else ""
        assert cell == f"{score[expected[0]]:.3f} {low}{cls[expected[0]]}"
        page.select_option("#attr", "")
        assert len(shown()) == result.d_sae
        # A feature page shows its clips, and every audio element loads its file.
        page.locator("#features tbody tr a").first.click()
        page.wait_for_load_state("load")
        assert page.locator(".clip audio").count() >= 1
        page.wait_for_function(
            "Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1)", timeout=15000
        )
        durations = page.locator("audio").evaluate_all("els => els.map(a => a.duration)")
        assert all(d > 0 for d in durations)
        images = page.locator(".spec img").evaluate_all("els => els.map(i => i.naturalWidth)")
        assert images and all(w > 0 for w in images)
        _check_playhead(page)
        browser.close()
    assert not errors and not dialogs


def _check_playhead(page) -> None:
    """On the open feature page: seeking moves the playhead, a click on the spectrogram seeks there, and
    the playhead advances while the clip plays."""
    clip = page.locator(".clip[data-start]").first
    audio, spec, head = clip.locator("audio"), clip.locator(".spec"), clip.locator(".playhead")
    duration = audio.evaluate("a => a.duration")

    def head_fraction() -> float:
        return (
            head.evaluate("h => h.getBoundingClientRect().left - h.parentElement.getBoundingClientRect().left")
            / (spec.bounding_box()["width"])
        )

    audio.evaluate("(a, t) => new Promise(r => { a.addEventListener('seeked', r, {once: true}); a.currentTime = t; })",
                   duration / 2)  # fmt: skip
    page.wait_for_timeout(50)
    assert head_fraction() == pytest.approx(0.5, abs=0.02)
    box = spec.bounding_box()
    spec.click(position={"x": box["width"] * 0.25, "y": box["height"] / 2})
    assert audio.evaluate("a => a.currentTime") == pytest.approx(duration * 0.25, abs=0.02)
    page.wait_for_timeout(50)
    assert head_fraction() == pytest.approx(0.25, abs=0.02)
    audio.evaluate("a => { a.currentTime = 0; return a.play(); }")
    page.wait_for_function("a => a.currentTime > 0.3 || a.ended", arg=audio.element_handle(), timeout=10000)
    audio.evaluate("a => a.pause()")
    page.wait_for_timeout(50)
    now = audio.evaluate("a => a.currentTime")
    assert now > 0.3 and head_fraction() == pytest.approx(now / duration, abs=0.02)


def test_spectrograms_have_frequency_and_time_axes(dashboard):
    """Each spectrogram carries 0–8 kHz ticks at their heights and round-second ticks inside its excerpt."""
    from html import unescape

    index = dashboard[0]
    page = (index.parent / "features" / f"f{page_first(index)}.html").read_text()
    boxes = page.split('<div class="clip" data-start="')[1:]
    assert boxes and '<script src="../feature.js"></script>' in page
    for box in boxes:
        start, end = (float(x) for x in box.split('"')[0:3:2])
        freq = box[box.index('class="faxis"') : box.index('class="spec"')]
        assert re_ticks(freq, "bottom") == [(0.0, "0"), (25.0, "2"), (50.0, "4"), (75.0, "6"), (100.0, "8")]
        assert "kHz" in freq and '<div class="playhead"></div>' in box
        times = re_ticks(unescape(box[box.index('class="taxis"') :].split("</div>")[0]), "left")
        assert len(times) >= 2
        for left, label in times:
            assert start - 1e-6 <= float(label) <= end + 1e-6
            assert left == pytest.approx(100 * (float(label) - start) / (end - start), abs=0.01)


def re_ticks(html: str, side: str) -> list[tuple[float, str]]:
    import re

    return [(float(a), b) for a, b in re.findall(rf'class="tick" style="{side}:([-\d.]+)%">([^<]+)</span>', html)]


def test_tick_positions():
    from whisper_sae.analysis.dashboard.media import frequency_ticks, nice_step, time_ticks

    assert [nice_step(s) for s in (3.0, 1.0, 0.25, 30.0)] == [0.5, 0.2, 0.05, 5.0]
    ticks = time_ticks(1.23, 4.23)
    assert [label for _, label in ticks] == ["1.5", "2.0", "2.5", "3.0", "3.5", "4.0"]
    assert ticks[0][0] == pytest.approx(0.27 / 3.0)
    assert time_ticks(0.0, 1.0)[0] == (0.0, "0.0") and time_ticks(0.0, 1.0)[-1] == (1.0, "1.0")
    assert frequency_ticks()[-1] == (1.0, "8")


def test_phone_labels_are_arpabet_with_the_ipa_in_a_tooltip(dashboard):
    """The test corpus' phones 's' and 'a' are IPA: pages and index show S and AE, with the IPA beside them."""
    index, result, _, _ = dashboard
    rows = _features_literal(index)
    labelled = [r for r in rows if r.get("phone")]
    assert labelled and all(r["phone"] in ("S", "AE") for r in labelled)
    assert all(r["phone_ipa"] == {"S": "s", "AE": "a"}[r["phone"]] for r in labelled)
    assert "phone labels in ARPAbet" in index.read_text()
    for path in index.parent.glob("features/*.html"):
        html = path.read_text()
        f = int(path.stem[1:])
        if result.feature_row(f).get("phone") == "a":
            assert 'class="label phone" title="eSpeak IPA /a/ → ARPAbet AE" data-ipa="a">AE</span>' in html
            break
    else:
        pytest.fail("no page of a feature labelled 'a'")


def test_index_says_why_a_feature_has_no_page(dashboard):
    from whisper_sae.analysis.dashboard.build import _ranked_alive

    index, result, _, _ = dashboard
    rows = _features_literal(index)
    ranked = [int(f) for f in _ranked_alive(result)]
    without = [r for r in rows if not r["page"]]
    assert without and all(r.get("reason") for r in without) and not any("reason" in r for r in rows if r["page"])
    for r in without:
        f = r["feature"]
        if result.arrays["fire_count"][f] == 0:
            assert r["reason"] == "dead: never fired"
        else:
            assert r["reason"] == f"rank {ranked.index(f) + 1} of {len(ranked)} live > --max-features 6"
            assert ranked.index(f) >= 6
    assert 'data-key="page"' in index.read_text()


def test_no_page_reasons_for_chosen_features(dashboard):
    from whisper_sae.analysis.dashboard.build import no_page_reasons

    result = dashboard[1]
    alive = [f for f in range(result.d_sae) if result.arrays["fire_count"][f] > 0]
    reasons = no_page_reasons(result, alive[:1], features=alive[:1])
    assert alive[0] not in reasons and reasons[alive[1]] == "not in --features"
    assert len(reasons) == result.d_sae - 1


def test_clip_media_are_much_smaller_than_wav_and_png(dashboard, tmp_path):
    """The Opus clips and WebP spectrograms take under a fifth of the bytes the same excerpts took as 16-bit
    WAV and RGBA PNG (the format before; about an eighth on real speech, benchmarks/dashboard_size.py)."""
    from html import unescape

    from whisper_sae.analysis.dashboard import media

    index, _, utts, _ = dashboard
    by_id = {u.id: u for u in utts}
    new = old = 0
    for path in index.parent.glob("features/*.html"):
        html = path.read_text()
        for card in html.split('<div class="clip" data-start="')[1:]:
            start, end = (float(x) for x in card.split('"')[0:3:2])
            utt = by_id[unescape(card[card.index("<b>") + 3 : card.index("</b>")])]
            stem = card[card.index('src="../clips/') + 14 :].split(".")[0]
            new += sum((index.parent / "clips" / f"{stem}.{ext}").stat().st_size for ext in ("ogg", "webp"))
            media.write_wav(tmp_path / "old.wav", utt.audio, start, end)
            media.write_spectrogram_png(tmp_path / "old.png", utt.audio, start, end)
            old += (tmp_path / "old.wav").stat().st_size + (tmp_path / "old.png").stat().st_size
    print(f"clip media: {new} bytes now, {old} bytes as WAV + PNG")
    assert old > 0 and new < old / 5, (new, old)


def test_the_folder_can_be_moved(dashboard, tmp_path):
    """Every href and src in every page (and each link the index builds) points to a file inside the folder,
    so a moved copy works as it is."""
    import re
    import shutil

    index = dashboard[0]
    moved = tmp_path / "elsewhere" / "site"
    shutil.copytree(index.parent, tmp_path / "copy")
    shutil.move(tmp_path / "copy", moved)
    root = moved.resolve()
    checked = 0
    for page in moved.rglob("*.html"):
        for link in re.findall(r'(?:href|src)="([^"]+)"', page.read_text()):
            assert not re.match(r"^(/|[a-z]+:)", link), (page, link)
            target = (page.parent / link.split("#")[0]).resolve()
            assert root in target.parents and target.is_file(), (page, link)
            checked += 1
    for row in _features_literal(moved / "index.html"):
        assert (moved / "features" / f"f{row['feature']}.html").is_file() == row["page"]
    assert checked > 10


def test_store_analysis_of_the_synthetic_corpus_builds_without_a_corpus(analysis_whisper, synth_corpus, tmp_path):
    """Store-backed analysis labels with the synthetic corpus' own eSpeak alignments, and the dashboard
    finds the audio by path and the activations in the store (no corpus pass, no Whisper run)."""
    from whisper_sae.activations import extract

    lw = analysis_whisper
    store = extract(lw, str(synth_corpus), ["encoder.blocks.0"], tmp_path / "store", progress=False)
    sae = make_sae(hook="encoder.blocks.0", d_sae=40, k=3)
    result = analyze(sae, store=store.path, top_n=2, progress=False)
    assert result.meta["alignments_dir"] == str(synth_corpus)
    assert all(r["alignment_source"] == "alignments_dir" for r in result.utterances)
    labels = result.summary["phone_labels"]
    assert labels["n_alive"] > 0 and len(result.phone_vocab) > 10
    index = build_dashboard(
        sae, tmp_path / "dash", analysis=result, model=lw, max_features=3, clips_per_feature=2, progress=False
    )
    html = (index.parent / "features" / f"f{page_first(index)}.html").read_text()
    assert html.count('<audio controls preload="auto"') == 2 and 'class="w active' in html
    assert 'data-ipa="' in html  # eSpeak's IPA phone label, shown in ARPAbet
    assert "Speaker attributes" not in html  # no probe.json beside this SAE: no attribute table


def page_first(index: Path) -> int:
    import json

    return json.loads((index.parent / "dashboard.json").read_text())["features"][0]


def test_rebuild_removes_only_what_the_dashboard_wrote(analysis_whisper, tmp_path):
    """A second build replaces the first one's pages and clips (listed in the folder's manifest) and
    leaves every other file in the folder alone."""
    import json

    lw, sae = analysis_whisper, make_sae()
    utts = aligned_utterances(durations=(1.0, 1.6))
    result = analyze(sae, utts, model=lw, top_n=2, progress=False)
    out = tmp_path / "site"
    build_dashboard(
        sae, out, analysis=result, corpus=utts, model=lw, max_features=4, clips_per_feature=2, progress=False
    )
    first = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    manifest = json.loads((out / ".whisper-sae-dashboard.json").read_text())
    assert {f for f in first if not f.startswith(".whisper-sae")} <= set(manifest["files"])
    (out / "notes.txt").write_text("mine")
    (out / "features" / "mine.html").write_text("mine")
    build_dashboard(
        sae,
        out,
        analysis=result,
        corpus=utts,
        model=lw,
        features=[page_first(out / "index.html")],
        clips_per_feature=1,
        progress=False,
    )
    pages = sorted(p.name for p in (out / "features").glob("*.html"))
    assert pages == sorted([f"f{page_first(out / 'index.html')}.html", "mine.html"])
    assert (out / "notes.txt").read_text() == "mine" and len(list((out / "clips").glob("*.ogg"))) == 1


def test_dashboard_from_another_working_directory(analysis_whisper, tiny_random_whisper_dir, tmp_path, monkeypatch):
    """analyze in folder A with relative paths; `whisper-sae dashboard` from folder B still finds the
    corpus audio, because analysis.json records paths relative to itself; the pages link their clips
    relative to the dashboard folder, and dashboard.json records paths relative to it."""
    import json

    from whisper_sae.cli import main

    a, b = tmp_path / "A", tmp_path / "B"
    (a / "corpus").mkdir(parents=True)
    b.mkdir()
    for u in aligned_utterances(durations=(1.0, 1.6)):
        sf.write(a / "corpus" / f"{u.id}.wav", u.audio, 16000)
        (a / "corpus" / f"{u.id}.json").write_text(json.dumps(u.alignment))
    make_sae(model_name=str(tiny_random_whisper_dir)).save_pretrained(a / "sae")
    monkeypatch.chdir(a)
    analyze("sae", "corpus", model=analysis_whisper, alignments_dir="corpus", top_n=2, progress=False)
    recorded = json.loads((a / "sae" / "analysis" / "analysis.json").read_text())
    assert recorded["meta"]["corpus"] == "../../corpus" and recorded["meta"]["sae_dir"] == ".."
    assert all(r["path"].startswith("../../corpus/") for r in recorded["utterances"])
    monkeypatch.chdir(b)
    assert main(["dashboard", "../A/sae", "--out", "site", "--max-features", "2", "--clips", "1", "--no-progress"]) == 0
    site = b / "site"
    pages = list(site.glob("features/*.html"))
    assert pages and len(list(site.glob("clips/*.ogg"))) == len(pages)
    for page in pages:
        html = page.read_text()
        assert 'src="../clips/' in html and str(tmp_path) not in html
    doc = json.loads((site / "dashboard.json").read_text())
    assert (site / doc["meta"]["corpus"]).resolve() == (a / "corpus").resolve()
    assert not Path(doc["meta"]["corpus"]).is_absolute()


def test_activation_drawing_keeps_only_the_ends_of_silent_runs():
    from whisper_sae.analysis.dashboard.media import activation_svg

    times = np.arange(10) * 0.1
    svg = activation_svg(times, np.array([0, 0, 0, 1, 0, 0, 0, 0, 2, 0.0]), 0.0, 0.9, 2.0)
    assert 'class="line" points="0,100 222,100 333,52 444,100 778,100 889,4 1000,100"' in svg

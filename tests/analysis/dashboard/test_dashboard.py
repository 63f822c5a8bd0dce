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
    wavs = sorted(out.glob("clips/*.wav"))
    assert wavs and len(wavs) == len(list(out.glob("clips/*.png")))
    for wav in wavs:
        audio, sr = sf.read(wav)
        assert sr == 16000 and 0 < len(audio) <= 16000 and np.abs(audio).max() <= 0.91
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
        browser.close()
    assert not errors and not dialogs


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
    assert (out / "notes.txt").read_text() == "mine" and len(list((out / "clips").glob("*.wav"))) == 1


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
    assert pages and len(list(site.glob("clips/*.wav"))) == len(pages)
    for page in pages:
        html = page.read_text()
        assert 'src="../clips/' in html and str(tmp_path) not in html
    doc = json.loads((site / "dashboard.json").read_text())
    assert (site / doc["meta"]["corpus"]).resolve() == (a / "corpus").resolve()
    assert not Path(doc["meta"]["corpus"]).is_absolute()

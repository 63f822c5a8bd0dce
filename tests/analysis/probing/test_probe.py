"""The probe end to end on a tiny random Whisper: files written, numbers consistent across parts,
the ablation edit exact, label problems caught before any model runs, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from whisper_sae.analysis.probing import ProbeOptions, probe
from whisper_sae.analysis.probing.ablate import ablation_transform
from whisper_sae.analysis.probing.models import ProbeSettings

from ..conftest import aligned_utterances, make_sae, voices

FAST = ProbeOptions(
    ks=(1, 4),
    ablate_k=3,
    wer_utterances=2,
    frames_per_utterance=8,
    progress=False,
    settings=ProbeSettings(n_trees=8, max_depth=4),
)


@pytest.fixture(scope="module")
def probed(analysis_whisper, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe")
    sae = make_sae(d_in=analysis_whisper.d_model, d_sae=48, k=6)
    result = probe(None, voices(), ["gender", "rate"], out=out, sae=sae, lw=analysis_whisper, options=FAST)
    return result, sae


def test_files_and_blocks(probed):
    result, sae = probed
    on_disk = json.loads((result.out / "probe.json").read_text())
    assert on_disk == result.summary and on_disk["format"] == "whisper-sae-probe/1"
    assert (result.out / "probe.md").read_text().startswith("# Speaker-attribute probe")
    g = result.attributes["gender"]
    # "Female " and "male" are normalised; 4 speakers, 8 utterances each.
    assert g["classes"] == ["female", "male"]
    assert g["counts"] == {"female": {"utterances": 8, "speakers": 4}, "male": {"utterances": 8, "speakers": 4}}
    sel = g["selectivity"]
    assert len(sel["score"]) == sae.cfg.d_sae and set(sel["class"]) <= {"female", "male"}
    assert all(0 <= s <= 1 for s in sel["score"])
    np.testing.assert_allclose(sel["score"], np.abs(2 * np.array(sel["auroc"]) - 1), atol=1e-4)
    assert [t["feature"] for t in g["top_features"]] == list(np.argsort(-np.array(sel["score"]), kind="stable")[:10])
    assert result.attributes["rate"]["kind"] == "continuous"
    assert {p.name for p in result.plots} >= {"gender_pca.png", "gender_tsne.png", "gender_heatmap.png", "rate_pca.png"}


def test_probe_scores_are_complete_and_pitch_is_found(probed):
    result, _ = probed
    for level in ("frame", "utterance"):
        for model in ("logreg", "forest"):
            assert set(result.attributes["gender"]["probes"][level][model]) == {"sae", "raw", "top1", "top4"}
    # Gender is the buzz's pitch here: raw encoder activations separate it on held-out speakers.
    assert result.balanced_accuracy("gender")["raw"] >= 0.75
    r = result.attributes["gender"]["probes"]["utterance"]["logreg"]["sae"]
    assert r["n_rows"] == 16 and set(r["recall"]) == {"female", "male"}


def test_ablation_baseline_equals_the_main_probe(probed):
    result, _ = probed
    abl = result.summary["ablation"]
    assert set(abl["conditions"]) == {"none", "top3 gender", "random3"}
    none = abl["conditions"]["none"]
    for level in ("frame", "utterance"):
        main = result.attributes["gender"]["probes"][level]["logreg"]
        assert none["probes"]["gender"][level]["sae"] == pytest.approx(main["sae"]["balanced_accuracy"])
        assert none["probes"]["gender"][level]["raw"] == pytest.approx(main["raw"]["balanced_accuracy"])
    assert none["wer_vs_clean_transcript"] == 0.0
    top = [t["feature"] for t in result.attributes["gender"]["top_features"][:3]]
    assert abl["conditions"]["top3 gender"]["features"] == top
    assert not set(abl["conditions"]["random3"]["features"]) & set(top)


def test_ablation_edit_keeps_the_error_term():
    sae = make_sae(d_in=16, d_sae=40, k=8, seed=2)
    x = torch.randn(50, 16)
    feats = [1, 5, 7, 30]
    codes = sae.encode(x)
    kept = codes.clone()
    kept[:, feats] = 0
    expected = x - (sae.decode(codes) - sae.decode(kept))
    torch.testing.assert_close(ablation_transform(sae, feats)(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ablation_transform(sae, [])(x), x)
    # Removing every feature leaves exactly the SAE's error plus b_dec.
    everything = ablation_transform(sae, list(range(40)))(x)
    torch.testing.assert_close(everything, x - sae.decode(codes) + sae.b_dec, atol=1e-5, rtol=1e-5)
    # It works on [B, T, d] as the hook sees it.
    assert ablation_transform(sae, feats)(x.reshape(5, 10, 16)).shape == (5, 10, 16)


def test_label_problems_stop_before_any_model_runs(monkeypatch, tmp_path):
    import whisper_sae.whisper as whisper

    monkeypatch.setattr(whisper, "load_whisper", lambda *a, **k: pytest.fail("a model was loaded"))
    sae = make_sae()
    with pytest.raises(ValueError, match=r"'accent' is not a column.*gender, rate, speaker"):
        probe(None, voices(), ["gender", "accent"], out=tmp_path, sae=sae, options=FAST)
    one_class = [u for u in voices() if u.attributes["gender"] == "male"]
    with pytest.raises(ValueError, match=r"'gender' is constant: all 8 labelled utterances are 'male'"):
        probe(None, one_class, ["gender"], out=tmp_path, sae=sae, options=FAST)
    few = voices(n_speakers=4)  # 2 speakers per class, fewer than min_speakers=3
    with pytest.raises(ValueError, match=r"fewer than two classes have at least 3 speakers"):
        probe(None, few, ["gender"], out=tmp_path, sae=sae, options=FAST)
    table = tmp_path / "meta.csv"
    table.write_text("id,accent\nnobody,us\n")
    with pytest.raises(ValueError, match=r"none of its 1 ids"):
        probe(None, voices(), ["accent"], metadata=table, out=tmp_path, sae=sae, options=FAST)
    from whisper_sae.analysis import AnalysisResult

    other = AnalysisResult(
        meta={"hook": "encoder.out"}, utterances=[], arrays={"freq": np.zeros(24)}, path=tmp_path / "other"
    )
    with pytest.raises(ValueError, match=r"analysis .*other has 24 features but the SAE has 48"):
        probe(None, voices(), ["gender"], out=tmp_path, sae=sae, analysis=other, options=FAST)


def test_top_features_carry_the_analysis_labels(analysis_whisper, tmp_path):
    """With an analysis of the same SAE, each top feature of probe.json and probe.md names its best
    phone and word label (the analysis' own), so a selective feature can be read at a glance."""
    from whisper_sae.analysis import analyze

    sae = make_sae(d_in=analysis_whisper.d_model, d_sae=48, k=6)
    labelled = analyze(sae, aligned_utterances(), model=analysis_whisper, top_n=2, progress=False)
    options = ProbeOptions(
        ks=(1,), ablate_k=0, wer_utterances=0, frames_per_utterance=4, tsne=False, progress=False, models=("logreg",)
    )
    result = probe(
        None, voices(), ["gender"], out=tmp_path, sae=sae, lw=analysis_whisper, analysis=labelled, options=options
    )
    top = result.attributes["gender"]["top_features"]
    assert len(top) == 10
    for row in top:
        for kind in ("phone", "word"):
            label, f1 = labelled.label(row["feature"], kind)
            assert row[kind] == label and row[f"{kind}_f1"] == pytest.approx(f1, abs=1e-5)
    named = [row for row in top if row["phone"]]
    assert named, "the tone clips give most live features a phone label"
    md = (tmp_path / "probe.md").read_text()
    assert "labels (F1)" in md and f"phone {named[0]['phone']} ({named[0]['phone_f1']:.2f})" in md


def test_cli_on_a_folder_with_metadata(analysis_whisper, tmp_path, capsys):
    from whisper_sae.cli import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = ["id\tspeaker\taccent"]
    for u in voices(n_speakers=6, per_speaker=1):
        sf.write(corpus / f"{u.id}.wav", u.audio, 16000)
        s = int(u.id.split("-")[0])
        rows.append(f"{u.id}\t{u.speaker}\t{'US' if s < 2 else ' us' if s == 2 else 'gb'}")
    (corpus / "metadata.tsv").write_text("\n".join(rows) + "\n")
    sae_dir = make_sae(d_in=analysis_whisper.d_model, d_sae=24, k=4).save_pretrained(tmp_path / "sae")
    out = sae_dir / "probe"  # the default place, where the dashboard looks
    code = main(
        [
            "probe",
            str(sae_dir),
            "--corpus",
            str(corpus),
            "--attribute",
            "accent",
            "--model",
            analysis_whisper.spec,
            "--ablate-k",
            "0",
            "--no-tsne",
            "--no-progress",
            "--models",
            "logreg",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "accent" in printed and "written:" in printed and "most selective: " in printed
    data = json.loads((out / "probe.json").read_text())
    assert data["attributes"]["accent"]["classes"] == ["gb", "us"]
    assert data["attributes"]["accent"]["counts"]["us"] == {"utterances": 3, "speakers": 3}
    assert any("2 spellings merged into 'us'" in n for n in data["attributes"]["accent"]["notes"])
    assert data["ablation"] == {} and set(data["attributes"]["accent"]["probes"]["utterance"]) == {"logreg"}
    code = main(
        [
            "probe",
            str(sae_dir),
            "--corpus",
            str(corpus),
            "--attribute",
            "gender",
            "--model",
            analysis_whisper.spec,
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 1
    assert "'gender' is not a column" in capsys.readouterr().err


def test_probe_from_a_store_matches_the_probe_from_the_corpus(analysis_whisper, tmp_path):
    """Frames read from an activation store (and, without a corpus, the store's utterance records as the
    corpus) give the probe the numbers it gets by running Whisper on the audio again."""
    from whisper_sae.activations import extract

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = ["id\tspeaker\tgender"]
    for u in voices(n_speakers=6, per_speaker=2):
        sf.write(corpus / f"{u.id}.wav", u.audio, 16000)
        rows.append(f"{u.id}\t{u.speaker}\t{u.attributes['gender'].strip()}")
    (corpus / "metadata.tsv").write_text("\n".join(rows) + "\n")
    store = extract(analysis_whisper, str(corpus), ["encoder.out"], tmp_path / "store", dtype="float32", progress=False)
    sae = make_sae(d_in=analysis_whisper.d_model, d_sae=48, k=6)
    options = ProbeOptions(
        ks=(1,), models=("logreg",), ablate_k=2, wer_utterances=2, frames_per_utterance=4, tsne=False, progress=False
    )
    direct = probe(None, str(corpus), ["gender"], out=tmp_path / "a", sae=sae, lw=analysis_whisper, options=options)
    stored = probe(
        None, None, ["gender"], out=tmp_path / "b", sae=sae, lw=analysis_whisper, store=store.path, options=options
    )
    a, b = direct.attributes["gender"], stored.attributes["gender"]
    assert (
        a["counts"]
        == b["counts"]
        == {"female": {"utterances": 6, "speakers": 3}, "male": {"utterances": 6, "speakers": 3}}
    )
    np.testing.assert_allclose(b["selectivity"]["score"], a["selectivity"]["score"], atol=1e-3)
    assert stored.balanced_accuracy("gender") == pytest.approx(direct.balanced_accuracy("gender"), abs=1e-6)
    assert stored.summary["n_frames"] == direct.summary["n_frames"] and stored.summary["store"] == str(store.path)
    # The ablation's transcripts read the audio back from the paths the store recorded.
    assert stored.summary["ablation"]["conditions"]["none"]["wer_vs_clean_transcript"] == 0.0
    part = extract(analysis_whisper, str(corpus), ["encoder.out"], tmp_path / "part", max_utterances=5, progress=False)
    with pytest.raises(ValueError, match=r"7 of 12 utterances are not in store .*part"):
        probe(
            None,
            str(corpus),
            ["gender"],
            out=tmp_path / "c",
            sae=sae,
            lw=analysis_whisper,
            store=part.path,
            options=options,
        )
    with pytest.raises(ValueError, match=r"has no 'encoder.blocks.0' activations; it holds encoder.out"):
        probe(
            None,
            None,
            ["gender"],
            out=tmp_path / "c",
            sae=make_sae(hook="encoder.blocks.0", d_in=analysis_whisper.d_model),
            lw=analysis_whisper,
            store=store.path,
            options=options,
        )


def test_probe_json_has_one_typed_schema(probed):
    """probe.json is written and read by ProbeReport: reading and writing it again gives the same text,
    the typed fields are the file's numbers, and the layout keeps the keys readers have always used."""
    from whisper_sae.analysis import ProbeReport

    result, sae = probed
    text = (result.out / "probe.json").read_text()
    report = ProbeReport.load(result.out)
    assert report.dumps() == text and ProbeReport.from_json(json.loads(text)).to_json() == json.loads(text)
    doc = json.loads(text)
    assert list(doc) == [
        "format",
        "sae",
        "model",
        "corpus",
        "store",
        "metadata",
        "analysis",
        "n_utterances",
        "n_frames",
        "n_frames_sampled",
        "n_speakers",
        "notes",
        "options",
        "attributes",
        "ablation",
    ]
    assert list(doc["attributes"]["gender"]) == [
        "kind",
        "column",
        "classes",
        "counts",
        "dropped",
        "notes",
        "features",
        "probes",
        "n_rows_frame",
        "n_rows_utterance",
        "selectivity",
        "top_features",
    ]
    g, rate = report.attributes["gender"], report.attributes["rate"]
    assert (
        report.sae.d_sae == sae.cfg.d_sae and g.selectivity.score == doc["attributes"]["gender"]["selectivity"]["score"]
    )
    assert (
        g.selectivity.class_ == doc["attributes"]["gender"]["selectivity"]["class"] and rate.selectivity.class_ is None
    )
    assert g.top_features[0].to_json() == doc["attributes"]["gender"]["top_features"][0]
    assert rate.top_features[0].rho_utterance == doc["attributes"]["rate"]["top_features"][0]["rho_utterance"]
    assert g.scores() == result.balanced_accuracy("gender")
    assert set(report.ablation.conditions) == set(doc["ablation"]["conditions"])
    assert report.ablation.conditions["none"].wer["wer_vs_clean_transcript"] == 0.0

"""Emotion-like attributes: a cross-corpus check (train on corpus A, score on corpus B), decoder hooks read
from a store, and the dashboard's selectivity of a many-class attribute."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_sae.analysis import ProbeReport
from whisper_sae.analysis.dashboard.selectivity import load_selectivity
from whisper_sae.analysis.probing import ProbeOptions, probe
from whisper_sae.audio import Utterance

from ..conftest import make_sae

QUICK = ProbeOptions(
    ks=(1, 4), models=("logreg",), ablate_k=0, wer_utterances=0, frames_per_utterance=6, tsne=False, progress=False
)
# An "emotion" that is the clip's pitch and loudness, as acted emotions partly are.
MOODS = {"sad": (110, 0.05), "neutral": (160, 0.1), "angry": (240, 0.4), "happy": (320, 0.25)}


def acted(moods, n_speakers, per_mood=2, seed=0, prefix="a") -> list[Utterance]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.6 * 16000)) / 16000
    out = []
    for s in range(n_speakers):
        shift = 1 + 0.06 * rng.standard_normal()
        for mood in moods:
            f0, gain = MOODS[mood]
            for k in range(per_mood):
                f = f0 * shift * (1 + 0.02 * rng.standard_normal())
                audio = gain * sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, 6))
                audio = (audio + 0.005 * rng.standard_normal(len(t))).astype(np.float32)
                out.append(
                    Utterance(
                        id=f"{prefix}{s}-{mood}-{k}",
                        audio=audio,
                        speaker=f"{prefix}{s}",
                        text="hello there",
                        attributes={"emotion": mood},
                    )
                )
    return out


@pytest.fixture(scope="module")
def transferred(analysis_whisper, tmp_path_factory):
    sae = make_sae(d_in=analysis_whisper.d_model, d_sae=48, k=6)
    train = acted(["sad", "neutral", "angry"], n_speakers=6)
    # The test corpus: two speakers, one class the training corpus lacks (happy), one it lacks (neutral).
    test = acted(["sad", "angry", "happy"], n_speakers=2, seed=1, prefix="b")
    out = tmp_path_factory.mktemp("transfer")
    result = probe(None, train, ["emotion"], out=out, sae=sae, lw=analysis_whisper, test_corpus=test, options=QUICK)
    return result, sae


def test_cross_corpus_scores_only_the_shared_classes(transferred):
    result, _ = transferred
    t = result.attributes["emotion"]["transfer"]
    assert t["classes"] == ["angry", "sad"] and t["only_train"] == ["neutral"] and t["only_test"] == ["happy"]
    assert t["n_test_speakers"] == 2
    # Trained on every training utterance of the shared classes (6 speakers x 2 moods x 2), scored on the
    # test corpus's (2 speakers x 2 moods x 2); happy is never scored.
    assert t["n_train_utterance"] == 24 and t["n_test_utterance"] == 8
    scores = t["probes"]["utterance"]["logreg"]
    assert set(scores) == {"sae", "raw", "top1", "top4"}
    assert set(scores["raw"]["recall"]) == {"angry", "sad"}
    # Pitch and loudness carry the label in both corpora: raw activations transfer.
    assert scores["raw"]["balanced_accuracy"] >= 0.75
    # The within-corpus probe is still there, over all three training classes.
    assert set(result.attributes["emotion"]["probes"]["utterance"]["logreg"]["raw"]["recall"]) == {
        "sad",
        "neutral",
        "angry",
    }


def test_transfer_round_trips_and_is_reported(transferred):
    result, _ = transferred
    text = (result.out / "probe.json").read_text()
    doc = json.loads(text)
    assert doc["test_corpus"] == "<in-memory utterances>"
    assert list(doc)[:6] == ["format", "sae", "model", "corpus", "store", "test_corpus"]
    report = ProbeReport.load(result.out)
    assert report.dumps() == text and report.attributes["emotion"].transfer["classes"] == ["angry", "sad"]
    md = (result.out / "probe.md").read_text()
    assert "Cross-corpus: trained on this corpus" in md and "only there: happy" in md


def test_no_shared_classes_is_said_not_scored(analysis_whisper, tmp_path):
    sae = make_sae(d_in=analysis_whisper.d_model, d_sae=48, k=6)
    train = acted(["sad", "angry"], n_speakers=3, per_mood=1)
    test = acted(["neutral", "happy"], n_speakers=1, per_mood=2, prefix="b")
    result = probe(
        None, train, ["emotion"], out=tmp_path, sae=sae, lw=analysis_whisper, test_corpus=test, options=QUICK
    )
    t = result.attributes["emotion"]["transfer"]
    assert t["classes"] == [] and t["probes"] == {} and "0 class(es) in common" in t["note"]
    one_class = acted(["happy"], n_speakers=1, per_mood=2, prefix="c")
    with pytest.raises(
        ValueError, match=r"cross-corpus test corpus .*no attribute can be scored.*'emotion' is constant"
    ):
        probe(
            None, train, ["emotion"], out=tmp_path, sae=sae, lw=analysis_whisper, test_corpus=one_class, options=QUICK
        )


def test_dashboard_selectivity_shows_emotion_like_any_attribute(transferred):
    result, sae = transferred
    sel = load_selectivity([result.out], d_sae=sae.cfg.d_sae, hook="encoder.out")
    spec = {s["name"]: s for s in sel.filter_spec()}
    assert spec["emotion"]["kind"] == "categorical" and spec["emotion"]["classes"] == ["angry", "neutral", "sad"]
    summary = result.attributes["emotion"]["selectivity"]
    best = int(np.argmax(summary["score"]))
    assert sel.top(1) == [best] and sel.of(best)["emotion"]["rank"] == 1
    fields = sel.index_fields(best)
    assert fields["cls:emotion"] == summary["class"][best] in {"angry", "neutral", "sad"}
    assert fields["sel:emotion"] == pytest.approx(summary["score"][best])
    assert fields["low:emotion"] == (summary["auroc"][best] < 0.5)


def test_decoder_hook_is_probed_from_a_store(analysis_whisper, tmp_path):
    """Decoder rows are the teacher-forced tokens; the utterance mean pools them."""
    from whisper_sae.activations import extract

    utts = acted(["sad", "angry"], n_speakers=4, per_mood=1)
    store = extract(analysis_whisper, utts, ["decoder.out"], tmp_path / "store", dtype="float32", progress=False)
    sae = make_sae(hook="decoder.out", d_in=analysis_whisper.d_model, d_sae=48, k=6)
    result = probe(
        None, None, ["emotion"], out=tmp_path / "p", sae=sae, lw=analysis_whisper, store=store.path, options=QUICK
    )
    acts, _ = store.read("decoder.out")
    assert result.summary["n_frames"] == len(acts) > 8 and result.summary["n_utterances"] == 8
    assert result.report.sae.hook == "decoder.out"
    assert set(result.attributes["emotion"]["probes"]["utterance"]["logreg"]["sae"]["recall"]) == {"angry", "sad"}

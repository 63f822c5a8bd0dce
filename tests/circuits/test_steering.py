"""Hallucination features and steering specs on a tiny random Whisper: the selection finds a planted
feature, a spec survives its file, and a spec applies exactly the edit the same flags give."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from whisper_sae.analysis.interventions import Edit, edit_fn, intervene, transcribe_edited
from whisper_sae.audio.nonspeech import make_nonspeech_corpus
from whisper_sae.circuits import hallucination_rate
from whisper_sae.circuits.hallucination_features import rank_features, select_hallucination_features, selectivity
from whisper_sae.circuits.steering import SteeringSpec, steered_transcripts, steered_wer
from whisper_sae.sae import SAEConfig, SparseAutoencoder
from whisper_sae.whisper import load_whisper


def _sae(d_in=32, d_sae=48, seed=0, model_name=None):
    torch.manual_seed(seed)
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=4, hook_name="encoder.out", model_name=model_name)
    sae = SparseAutoencoder(cfg)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
    return sae.eval()


@pytest.fixture(scope="module")
def lw(tiny_random_whisper_dir):
    return load_whisper(tiny_random_whisper_dir)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_nonspeech_corpus(
        tmp_path_factory.mktemp("ns") / "c", n_per_kind=2, kinds=["silence", "tone", "white_noise"], max_seconds=2
    )


def _group(rng, n, f_on=None, level=0.0, d=20):
    mean = np.abs(rng.normal(0, 0.2, (n, d)))
    if f_on is not None:
        mean[:, f_on] += level
    return {"mean": mean, "fires": (mean > 0.1).astype(float), "active_sum": mean * 50, "frames": np.full(n, 50)}


def test_ranking_puts_the_planted_feature_first_and_not_one_that_also_fires_on_speech():
    rng = np.random.default_rng(0)
    halluc = _group(rng, 12)
    halluc["mean"][:, 7] += 2.0  # fires on hallucinated clips only: the planted feature
    halluc["mean"][:, 3] += 3.0  # fires more on hallucinated clips, but as much on speech
    empty = _group(rng, 4)
    speech = _group(rng, 10, f_on=3, level=3.0)
    ranking = rank_features({"hallucinated": halluc, "empty": empty, "speech": speech})
    assert ranking[0]["feature"] == 7
    assert [r["feature"] for r in ranking].index(3) > 5
    assert ranking[0]["mean"]["hallucinated"] > 2 and ranking[0]["mean"]["speech"] < 0.5
    # a group with fewer than min_clips clips is not contrasted with; none at all is an error
    solo = rank_features({"hallucinated": halluc, "empty": _group(rng, 1, f_on=7, level=2.0), "speech": speech})
    assert solo[0]["feature"] == 7
    with pytest.raises(ValueError, match="a group to contrast with"):
        rank_features({"hallucinated": halluc, "empty": _group(rng, 1)})
    assert selectivity(halluc["mean"], [speech["mean"]]).shape == (20,)
    # a model that hallucinates on every clip leaves the "empty" group with no clips: the table still prints
    from whisper_sae.circuits.hallucination_features import FeatureSelection

    none_empty = {"hallucinated": halluc, "empty": _group(rng, 0), "speech": speech}
    table = FeatureSelection(meta={"groups": list(none_empty)}, ranking=rank_features(none_empty)).table(3)
    assert table.splitlines()[2].startswith("| 7 |") and "–" in table


def test_selection_on_whisper_finds_a_feature_planted_on_the_hallucinated_clips(lw, corpus):
    """Plant a feature whose encoder direction is the mean encoder output of the clips Whisper
    hallucinates on minus that of the "speech" clips (chirps here): the selection must rank it first."""
    from whisper_sae.audio import Utterance, load_corpus
    from whisper_sae.whisper.hooks import encode_clips

    labels = hallucination_rate(lw, corpus, max_new_tokens=4)
    flags = np.array([c["hallucinated"] for c in labels.clips])
    t = np.arange(24000) / 16000
    speech = [
        Utterance(id=f"s{i}", audio=(0.3 * np.sin(2 * np.pi * (300 + 150 * i) * t * (1 + t))).astype(np.float32))
        for i in range(4)
    ]
    ns = [u.audio for u, h in zip(load_corpus(corpus), flags) if h]
    mean_of = lambda audios: torch.stack([a.mean(0) for a in encode_clips(lw, audios, "encoder.out")])  # noqa: E731
    halluc, other = mean_of(ns), mean_of([u.audio for u in speech])
    direction = halluc.mean(0) - other.mean(0)
    direction = direction / direction.norm()
    sae, planted = _sae(), 11
    with torch.no_grad():
        sae.W_enc[:, planted] = 50 * direction
        sae.b_enc[planted] = -50 * float((torch.cat([halluc, other]) @ direction).mean())
    selection = select_hallucination_features(sae, corpus, speech, model=lw, max_new_tokens=4)
    assert selection.meta["clips"] == {"hallucinated": int(flags.sum()), "empty": int((~flags).sum()), "speech": 4}
    assert "speech" in selection.meta["contrasted"]
    assert selection.ranking[0]["feature"] == planted
    spec = selection.spec(3, clamp=-2.0)
    assert spec.features[0] == planted
    assert spec.values[0] == pytest.approx(-2.0 * selection.ranking[0]["active_mean"], abs=1e-3)
    assert selection.spec(2).values == [0.0, 0.0]


def test_spec_round_trips_and_bad_files_are_sentences(tmp_path):
    spec = SteeringSpec(edits=[(3, 0.0), (17, -2.5)], sae="runs/sae", hook="encoder.out", model="tiny.en", note="n")
    path = spec.save(tmp_path / "s.json")
    back = SteeringSpec.load(path)
    assert back == spec and back.features == [3, 17] and back.values == [0.0, -2.5]
    assert json.loads(path.read_text())["edits"][1] == {"feature": 17, "value": -2.5}
    (tmp_path / "bad.json").write_text(json.dumps({"edits": []}))
    with pytest.raises(ValueError, match='needs "format"'):
        SteeringSpec.load(tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text(json.dumps({"format": "whisper-sae-steering/1", "edits": [{"feature": 1}]}))
    with pytest.raises(ValueError, match='needs "feature" and "value"'):
        SteeringSpec.load(tmp_path / "bad2.json")
    with pytest.raises(FileNotFoundError, match="steering file .*missing.json does not exist"):
        SteeringSpec.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="names a feature twice"):
        SteeringSpec(edits=[(3, 0.0), (3, 1.0)])
    with pytest.raises(ValueError, match="out of range"):
        SteeringSpec(edits=[(48, 0.0)]).check(_sae())


def test_per_feature_values_and_the_empty_edit():
    sae = _sae(d_in=8, d_sae=16)
    x = torch.randn(1, 6, 8)
    codes = sae.encode(x)
    out = edit_fn(sae, [2, 5], "clamp", [1.5, -2.0], None)(x)
    expected = x + (1.5 - codes[..., 2:3]) * sae.W_dec[2] + (-2.0 - codes[..., 5:6]) * sae.W_dec[5]
    torch.testing.assert_close(out, expected.detach(), rtol=1e-5, atol=1e-5)
    # no feature: the SAE spliced in with its error term, x up to rounding
    torch.testing.assert_close(edit_fn(sae, [], "clamp", [], None, allow_empty=True)(x), x, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        edit_fn(sae, [], "ablate", None, None)
    with pytest.raises(ValueError, match="2 values for 3 features"):
        edit_fn(sae, [1, 2, 3], "clamp", [1.0, 2.0], None)


def test_steering_in_the_rate_is_the_intervene_edit(lw, corpus):
    from whisper_sae.audio import load_corpus

    sae = _sae()
    spec = SteeringSpec(edits=[(f, 30.0) for f in range(6)], hook="encoder.out")
    steered = hallucination_rate(lw, corpus, max_new_tokens=4, steering=spec, sae=sae)
    audios = [u.audio for u in load_corpus(corpus)]
    expected = transcribe_edited(lw, audios, [Edit(sae, list(range(6)), "clamp", 30.0)], max_new_tokens=4)
    assert [c["transcript"] for c in steered.clips] == [t.strip() for t in expected]
    assert steered.meta["steering"]["edits"][0] == {"feature": 0, "value": 30.0}
    plain = hallucination_rate(lw, corpus, max_new_tokens=4)
    # the edit reaches the decoder (this random Whisper's transcripts barely move; its no-speech probability does)
    assert [c["no_speech_prob"] for c in steered.clips] != [c["no_speech_prob"] for c in plain.clips]
    # padding: the edit reaches the 30-s window's padding too, which changes the no-speech probability
    padded = hallucination_rate(
        lw, corpus, max_new_tokens=4, steering=SteeringSpec(edits=spec.edits, padding=True), sae=sae
    )
    assert [c["no_speech_prob"] for c in padded.clips] != [c["no_speech_prob"] for c in steered.clips]
    with pytest.raises(ValueError, match="names no SAE"):
        hallucination_rate(lw, corpus, max_new_tokens=4, steering=spec)
    # a sweep's encoder cache: the edit applied to cached encoder outputs gives the same result as the hook
    cache: dict = {}
    hallucination_rate(lw, corpus, max_new_tokens=4, encoder_cache=cache)
    cached = hallucination_rate(lw, corpus, max_new_tokens=4, steering=spec, sae=sae, encoder_cache=cache)
    assert [c["transcript"] for c in cached.clips] == [c["transcript"] for c in steered.clips]
    assert [c["no_speech_prob"] for c in cached.clips] == pytest.approx([c["no_speech_prob"] for c in steered.clips])


def test_steered_wer_baselines(lw, tmp_path):
    from whisper_sae.audio import Utterance

    rng = np.random.default_rng(0)
    utts = [
        Utterance(id=f"u{i}", audio=(0.1 * rng.standard_normal(16000)).astype(np.float32), text="hello there")
        for i in range(3)
    ]
    sae = _sae()
    out = steered_wer(
        sae,
        lw,
        utts,
        {"clean": None, "spliced_error": SteeringSpec(edits=[]), "clamp": SteeringSpec(edits=[(1, 40.0)])},
    )
    assert out["clean"]["utterances"] == 3 and out["clean"]["words"] == 6
    # the spliced-with-error-term baseline is clean Whisper up to rounding: same transcripts here
    assert out["spliced_error"]["changed"] == 0 and out["spliced_error"]["transcripts"] == out["clean"]["transcripts"]
    budget = 2 * len(lw.text_tokens("hello there")) + 8
    clamped = steered_transcripts(
        sae, lw, [u.audio for u in utts], SteeringSpec(edits=[(1, 40.0)]), max_new_tokens=budget
    )
    assert out["clamp"]["transcripts"] == clamped
    cached = steered_wer(sae, lw, utts, {"clean": None, "clamp": SteeringSpec(edits=[(1, 40.0)])}, encoder_cache={})
    assert cached["clamp"]["transcripts"] == clamped and cached["clean"]["transcripts"] == out["clean"]["transcripts"]


def test_intervene_with_a_steer_file_equals_the_same_edit_by_flags(tmp_path, tiny_random_whisper_dir, capsys):
    from whisper_sae.cli import main

    sae = _sae(model_name=str(tiny_random_whisper_dir))
    sae.save_pretrained(tmp_path / "sae")
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    SteeringSpec(edits=[(4, 25.0), (9, 25.0)], hook="encoder.out").save(tmp_path / "s.json")
    common = [str(tmp_path / "sae"), str(tmp_path / "a.wav"), "--model", str(tiny_random_whisper_dir), "--json"]
    assert main(["intervene", *common, "--steer-file", str(tmp_path / "s.json")]) == 0
    by_file = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["intervene", *common, "--feature", "4,9", "--mode", "clamp", "--value", "25"]) == 0
    by_flags = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert by_file["after"] == by_flags["after"] and by_file["before"] == by_flags["before"]
    lw = load_whisper(tiny_random_whisper_dir)
    direct = intervene(sae, lw, [sf.read(tmp_path / "a.wav", dtype="float32")[0]], [4, 9], "clamp", [25.0, 25.0])
    assert direct[0].after == by_file["after"]
    for both_or_neither in ([], ["--feature", "4", "--steer-file", str(tmp_path / "s.json")]):
        assert main(["intervene", *common, *both_or_neither]) != 0
        assert "give --feature (with --mode/--value) or --steer-file" in capsys.readouterr().err


def test_active_only_clamps_a_feature_where_it_fires_and_nowhere_else(tmp_path):
    sae = _sae(d_in=8, d_sae=16)
    torch.manual_seed(1)
    x = torch.randn(2, 40, 8)
    codes = sae.encode(x)
    f = int((codes > 0).float().mean((0, 1)).sub(0.5).abs().argmin())  # a feature firing on some frames only
    fires = codes[..., f] > 0
    assert fires.any() and not fires.all()
    everywhere = edit_fn(sae, [f], "clamp", [-3.0], None)(x)
    active = edit_fn(sae, [f], "clamp", [-3.0], None, active_only=True)(x)
    expected = x + torch.where(fires, -3.0 - codes[..., f], torch.zeros_like(codes[..., f]))[..., None] * sae.W_dec[f]
    torch.testing.assert_close(active, expected.detach(), rtol=1e-5, atol=1e-5)
    # where the feature is silent the plain clamp writes its direction in; active_only leaves x alone
    assert not torch.allclose(everywhere[~fires], x[~fires], atol=1e-3)
    torch.testing.assert_close(active[~fires], x[~fires], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(active[fires], everywhere[fires], rtol=1e-5, atol=1e-5)
    # the flag lives in the spec file and reaches the edit
    spec = SteeringSpec(edits=[(f, -3.0)], hook="encoder.out", active_only=True)
    back = SteeringSpec.load(spec.save(tmp_path / "s.json"))
    assert back.active_only and back.edit_args()["active_only"] is True
    assert SteeringSpec.from_dict({**spec.to_dict(), "active_only": False}).active_only is False


def test_a_feature_gate_edits_only_the_clips_where_the_features_fire(tmp_path):
    from whisper_sae.circuits.hallucination_features import FeatureSelection

    sae = _sae(d_in=8, d_sae=16)
    torch.manual_seed(2)
    x = torch.randn(2, 30, 8)
    codes = sae.encode(x)
    f = int(codes.sum((0, 1)).argmax())
    # make clip 0 drive feature f hard and clip 1 not at all
    x[0] += 4 * sae.W_enc[:, f].detach() / sae.W_enc[:, f].norm()
    x[1] -= 4 * sae.W_enc[:, f].detach() / sae.W_enc[:, f].norm()
    codes = sae.encode(x).detach()
    score = codes[..., f].mean(1)
    assert score[0] > 2 * score[1]
    gate = float(score.mean())
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 20:] = False  # the gate averages over each clip's masked frames
    gated = edit_fn(sae, [f], "clamp", [-2.0], mask, gate=gate)(x)
    plain = edit_fn(sae, [f], "clamp", [-2.0], mask)(x)
    torch.testing.assert_close(gated[0], plain[0])
    torch.testing.assert_close(gated[1], x[1], rtol=1e-5, atol=1e-5)  # below the gate: no edit
    assert not torch.allclose(plain[1], x[1], atol=1e-3)
    spec = SteeringSpec(edits=[(f, -2.0)], hook="encoder.out", gate=gate)
    assert SteeringSpec.load(spec.save(tmp_path / "g.json")).gate == pytest.approx(gate)
    with pytest.raises(ValueError, match='"gate" must be a non-negative number'):
        SteeringSpec.from_dict({**spec.to_dict(), "gate": "high"})
    # the threshold sits between the speech clips and the hallucinated ones
    sel = FeatureSelection(
        meta={"sae": None, "hook": "encoder.out", "model": "m", "nonspeech": "ns"},
        ranking=[{"feature": 5, "active_mean": 1.0}, {"feature": 9, "active_mean": 2.0}],
        clip_means={"speech": [[0.01, 0.0], [0.02, 0.02]], "hallucinated": [[0.5, 0.4], [0.9, 0.1], [0.2, 0.2]]},
    )
    t = sel.gate_threshold(2)
    assert 0.04 < t < 0.9 and t == pytest.approx(np.sqrt(0.04 * 0.9))
    assert sel.spec(2, -1.0, gated=True).gate == pytest.approx(t)
    sel.clip_means["speech"].append([1.0, 1.0])
    with pytest.raises(ValueError, match="do not separate"):
        sel.gate_threshold(2)

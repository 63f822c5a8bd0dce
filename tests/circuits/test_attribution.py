"""Attribution on a tiny random Whisper: gradient × activation of the spliced SAE adds up to the plain
gradient × activation of the hook, an identity SAE gives it feature by feature, and ablations run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from whisper_sae.circuits.attribution import ablation_check, attribute, choose_token
from whisper_sae.sae import SAEConfig, SparseAutoencoder
from whisper_sae.whisper import frames_for_duration, load_whisper, patch
from whisper_sae.whisper.splice import frame_mask


@pytest.fixture(scope="module")
def lw(tmp_path_factory, tiny_random_whisper_writer):
    return load_whisper(tiny_random_whisper_writer(tmp_path_factory.mktemp("attr_model"), init_std=0.2))


def clip(seconds=1.3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def identity_sae(d, hook):
    sae = SparseAutoencoder(SAEConfig(d_in=d, d_sae=d, architecture="relu", apply_b_dec_to_input=False, hook_name=hook))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(d))
        sae.W_dec.copy_(torch.eye(d))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def plain_grad_x_act(lw, audio, hook, text, token=1):
    """d logit / d acts * acts at ``hook`` without any SAE: the reference the attribution must equal."""
    features = lw.log_mel([audio])
    n_real = frames_for_duration(len(audio) / 16000)
    choice = choose_token(lw, lw.text_tokens(text), token=token)
    held = {}

    def leaf(acts):
        x = acts.detach().clone().requires_grad_(True)
        held["x"] = x
        return x

    for p in lw.model.parameters():
        p.requires_grad_(False)
    with torch.enable_grad(), patch(lw.model, hook, leaf):
        ids = torch.tensor([choice.ids])
        logits = lw.model(input_features=features, decoder_input_ids=ids, use_cache=False).logits
        logits[0, choice.position - 1, choice.token_id].backward()
    x = held["x"]
    real = frame_mask([n_real], x.shape[1])[0]
    return (x.grad * x.detach())[0][real].numpy()


@pytest.mark.parametrize("hook", ["encoder.blocks.0", "encoder.blocks.1.mlp_out"])
def test_identity_sae_attribution_is_plain_gradient_times_activation(lw, hook):
    audio, text = clip(), "hello world again"
    sae = identity_sae(lw.d_model, hook)
    result = attribute(sae, lw, audio, token=1, text=text)
    plain = plain_grad_x_act(lw, audio, hook, text)
    assert result.encoder.scores.shape == plain.shape
    positive = result.encoder.codes > 0
    # Feature j of the identity SAE is dimension j where it is positive; the rest is the error term.
    np.testing.assert_allclose(result.encoder.scores[positive], plain[positive], rtol=1e-4, atol=1e-6)
    assert np.all(result.encoder.scores[~positive] == 0)
    per_frame = result.encoder.scores.sum(1) + result.encoder.error + result.encoder.bias
    np.testing.assert_allclose(per_frame, plain.sum(1), rtol=1e-4, atol=1e-5)
    assert np.abs(plain).max() > 1e-4  # the check is not vacuous: the hook moves the logit


def test_random_sae_attribution_adds_up_and_predicts_small_ablations(lw, tmp_path):
    torch.manual_seed(1)
    hook = "encoder.blocks.1"
    sae = SparseAutoencoder(SAEConfig(d_in=lw.d_model, d_sae=96, architecture="relu", hook_name=hook)).eval()
    audio, text = clip(seed=2), "the quick brown fox"
    dec = SparseAutoencoder(SAEConfig(d_in=lw.d_model, d_sae=48, architecture="relu", hook_name="decoder.blocks.0"))
    result = attribute(sae, lw, audio, word="brown", text=text, decoder_sae=dec.eval())
    assert result.meta["token"].strip().lower().startswith("br")
    plain = plain_grad_x_act(lw, audio, hook, text, token=result.meta["token_index"])
    enc = result.encoder
    np.testing.assert_allclose(enc.scores.sum(1) + enc.error + enc.bias, enc.total, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(enc.total, plain.sum(1), rtol=1e-4, atol=1e-5)
    # The decoder SAE, spliced in too, adds up the same way; positions after the token get no gradient.
    d = result.decoder
    np.testing.assert_allclose(d.scores.sum(1) + d.error + d.bias, d.total, rtol=1e-4, atol=1e-5)
    assert np.all(d.total[result.meta["position"] :] == 0) and np.abs(d.total).max() > 0
    check = ablation_check(sae, lw, result, k=4, n_random=2)
    # The splice with error term is clean Whisper: the ablation pass's base logit is the attribution pass's.
    assert check["logit"] == pytest.approx(check["logit_attribution_pass"], abs=1e-4)
    assert len(check["features"]["effect"]) == 4 and len(check["joint_random_k"]["effect"]) == 2
    files = result.write(tmp_path / "out", n=5)
    doc = json.loads(files["json"].read_text())
    assert len(doc["encoder"]["top_entries"]) == 5 and files["plot"].stat().st_size > 1000
    assert doc["decoder"]["position"] == result.meta["position"] - 1 and doc["decoder"]["features_at_token"]


def test_token_choice_errors_name_the_problem(lw):
    ids = lw.text_tokens("hello world")
    with pytest.raises(ValueError, match="not in the transcript"):
        choose_token(lw, ids, word="goodbye")
    with pytest.raises(ValueError, match="out of range"):
        choose_token(lw, ids, token=99)
    assert choose_token(lw, ids, token=-1).index == len(ids) - 1


def test_attribute_cli_writes_json_plot_and_check(lw, tiny_random_whisper_writer, tmp_path, capsys):
    import soundfile as sf

    from whisper_sae.cli import main

    model_dir = tiny_random_whisper_writer(tmp_path / "model", init_std=0.2)
    torch.manual_seed(2)
    sae = SparseAutoencoder(SAEConfig(d_in=lw.d_model, d_sae=64, architecture="relu", hook_name="encoder.blocks.1"))
    sae.save_pretrained(tmp_path / "sae")
    sf.write(tmp_path / "clip.wav", clip(seed=4), 16000)
    out = tmp_path / "attr"
    code = main(
        ["attribute", str(tmp_path / "sae"), str(tmp_path / "clip.wav"), "--model", str(model_dir), "--token", "0"]
        + ["--text", "hello there", "--check", "3", "--out", str(out)]
    )
    assert code in (0, None)
    doc = json.loads((out / "attribution.json").read_text())
    assert doc["token_index"] == 0 and doc["teacher_forced_on"] == "reference"
    check = json.loads((out / "ablation_check.json").read_text())
    assert len(check["features"]["effect"]) == 3 and (out / "attribution.png").is_file()
    with pytest.raises(SystemExit):
        main(
            [
                "attribute",
                str(tmp_path / "sae"),
                str(tmp_path / "clip.wav"),
                "--token",
                "0",
                "--word",
                "x",
                "--out",
                "o",
            ]
        )


def test_ablations_at_encoder_out_match_the_patched_model(lw):
    """At encoder.out the ablation check edits the encoder's output directly: same logits as ``patch``."""
    from whisper_sae.analysis.interventions import edit_fn
    from whisper_sae.circuits.attribution import _logits_with
    from whisper_sae.whisper import HookPoint

    torch.manual_seed(3)
    sae = SparseAutoencoder(SAEConfig(d_in=lw.d_model, d_sae=64, architecture="relu", hook_name="encoder.out")).eval()
    audio = clip(seed=5)
    result = attribute(sae, lw, audio, token=0, text="good day")
    feature = result.encoder.by_feature(1)[0]["feature"]
    n_real = result.meta["frames"]
    fast = _logits_with(
        lw,
        sae,
        HookPoint.parse("encoder.out", lw.config),
        result.features,
        result.choice,
        [[], [(feature, None)]],
        n_real,
    )
    mask = frame_mask([n_real], lw.config.max_source_positions)
    ids = torch.tensor([result.choice.ids])
    with torch.no_grad(), patch(lw.model, "encoder.out", edit_fn(sae, feature, "ablate", None, mask)):
        slow = lw.model(input_features=result.features, decoder_input_ids=ids).logits[0, result.choice.position - 1]
    assert fast[1] == pytest.approx(float(slow[result.choice.token_id]), abs=1e-4)
    assert fast[0] == pytest.approx(result.meta["logit"], abs=1e-4)

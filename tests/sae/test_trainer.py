"""The trainer: it learns, resumes to the same weights, stops cleanly on bad numbers, reads stores."""

from __future__ import annotations

import json

import pytest
import torch

from whisper_sae.sae import SAEConfig, SAESpec, SparseAutoencoder, TrainConfig, TrainingError, fit, train
from whisper_sae.sae.checkpoint import read as read_checkpoint

D = 24


def _config(steps=60, **kw):
    base = dict(
        steps=steps,
        lr=3e-3,
        log_every=10,
        eval_every=30,
        checkpoint_every=20,
        autocast="none",
        device="cpu",
        dead_after_tokens=2000,
    )
    return TrainConfig(**{**base, **kw})


def _specs():
    return [
        SAESpec(SAEConfig(D, 64, "relu"), coef=0.5, name="relu"),
        SAESpec(SAEConfig(D, 64, "topk", k=6), name="topk"),
        SAESpec(SAEConfig(D, 64, "batchtopk", k=6), name="batchtopk"),
        SAESpec(SAEConfig(D, 64, "jumprelu"), coef=0.05, name="jumprelu"),
    ]


def test_every_architecture_learns_in_one_shared_pass(tmp_path, synth):
    val = synth.rows(512, seed=99)
    folders = fit(_specs(), synth.stream(), _config(steps=150), tmp_path, val=val)
    assert [f.name for f in folders] == ["relu", "topk", "batchtopk", "jumprelu"]
    for folder in folders:
        records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        held_out = [r for r in records if r["split"] == "val"]
        assert held_out[-1]["ev"] > 0.5, (folder.name, held_out[-1])
        train_rows = [r for r in records if r["split"] == "train"]
        assert {"loss", "mse", "ev", "l0", "dead_frac", "dense_frac", "lr", "tokens_per_s"} <= train_rows[-1].keys()
        assert (folder / "loss.png").stat().st_size > 1000 and (folder / "metrics.png").is_file()
        # The saved SAE takes raw activations: its EV on them equals the held-out EV logged in training.
        sae = SparseAutoencoder.from_pretrained(folder)
        with torch.no_grad():
            x_hat = sae(val).x_hat
        ev = 1 - (x_hat - val).pow(2).sum() / (val - val.mean(0)).pow(2).sum()
        assert abs(float(ev) - held_out[-1]["ev"]) < 1e-4
        if sae.cfg.architecture == "topk":
            assert held_out[-1]["l0"] <= 6
    assert SparseAutoencoder.from_pretrained(folders[0]).cfg.activation_scale != 1.0


def test_resume_reaches_the_same_weights(tmp_path, synth):
    val = synth.rows(64, seed=99)
    whole = fit(_specs(), synth.stream(), _config(), tmp_path / "whole", val=val)
    assert fit(_specs(), synth.stream(), _config(), tmp_path / "parts", val=val, stop_after=27) == []
    with pytest.raises(FileExistsError, match="resume"):
        fit(_specs(), synth.stream(), _config(), tmp_path / "parts", val=val)
    parts = fit(_specs(), synth.stream(), _config(), tmp_path / "parts", val=val, resume=True)
    for a, b in zip(whole, parts):
        one, two = SparseAutoencoder.from_pretrained(a), SparseAutoencoder.from_pretrained(b)
        for name, tensor in one.state_dict().items():
            torch.testing.assert_close(two.state_dict()[name], tensor, atol=1e-6, rtol=0)
        steps = [json.loads(line)["step"] for line in (b / "metrics.jsonl").read_text().splitlines()]
        assert steps == sorted(steps) and steps[-1] == 60


def test_resume_restores_the_loss_scale(tmp_path, synth, monkeypatch):
    """fp16 training's loss scale is part of the checkpoint: a resumed run continues from the saved scale
    (here it doubles every 5 clean steps) instead of starting over at 65536."""
    import whisper_sae.sae.loop as trainer_module

    made = []

    def scaler(device, dtype):
        made.append(torch.amp.GradScaler("cpu", enabled=True, growth_interval=5))
        return made[-1]

    monkeypatch.setattr(trainer_module, "grad_scaler", scaler)
    spec = _specs()[1:2]
    fit(spec, synth.stream(), _config(), tmp_path / "whole")
    whole = made[-1].get_scale()
    fit(spec, synth.stream(), _config(), tmp_path / "parts", stop_after=27)
    fit(spec, synth.stream(), _config(), tmp_path / "parts", resume=True)
    assert whole == 65536.0 * 2**12 and made[-1].get_scale() == whole


def test_jumprelu_thresholds_can_learn_faster(tmp_path, synth):
    """jumprelu_threshold_lr scales the thresholds' learning rate only, through warm-up and decay."""
    from whisper_sae.sae.loop import Trainer

    spec = SAESpec(SAEConfig(D, 64, "jumprelu"), coef=0.05, name="")
    trainer = Trainer([spec], _config(steps=20, architectures={"jumprelu": {"threshold_lr": 10.0}}), tmp_path)
    member = trainer.members[0]
    member.init_from_data(synth.rows(256), "mean", True)
    before = member.sae.log_threshold.detach().clone()
    for step in range(3):
        trainer._train_step(synth.rows(128, seed=step))
        trainer.step += 1
        weights, thresholds = member.optimizer.param_groups
        assert thresholds["params"] == [member.sae.log_threshold]
        assert thresholds["lr"] == pytest.approx(10 * weights["lr"]) and weights["lr"] > 0
    assert not torch.equal(member.sae.log_threshold.detach(), before)


def test_resume_refuses_other_settings(tmp_path, synth):
    fit(_specs()[:1], synth.stream(), _config(), tmp_path, stop_after=20)
    with pytest.raises(ValueError, match="seed=0.*seed=3"):
        fit(_specs()[:1], synth.stream(), _config(seed=3), tmp_path, resume=True)


def test_nan_batch_stops_with_the_last_good_checkpoint(tmp_path, synth):
    def stream():
        for i, batch in enumerate(synth.stream()):
            if i == 25:
                batch[3, 5] = float("nan")
            yield batch

    with pytest.raises(TrainingError, match="batch 25 .* NaN or Inf.*last good state \\(step 20\\)"):
        fit(_specs()[1:2], stream(), _config(), tmp_path)
    meta, tensors = read_checkpoint(tmp_path / "checkpoint" / "state.json")
    assert meta["step"] == 20
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_exploding_loss_is_caught(tmp_path, synth):
    with pytest.raises(TrainingError, match="the loss of SAE .* became (nan|inf)"):
        fit(_specs()[:1], synth.stream(), _config(lr=1e30, lr_warmup_steps=1), tmp_path)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_bf16_autocast_trains(tmp_path, synth, device):
    folders = fit(
        _specs(),
        synth.stream(),
        _config(steps=40, autocast="bf16", device=device),
        tmp_path,
        val=synth.rows(256, seed=9),
    )
    for folder in folders:
        val = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()][-1]
        assert val["split"] == "val" and val["ev"] > 0.3, (folder.name, val)


def test_lr_and_sparsity_schedules():
    cfg = TrainConfig(steps=100, lr=1.0, lr_warmup_steps=10, lr_decay_start=0.8, sparsity_warmup_steps=20)
    assert cfg.lr_at(0) == pytest.approx(0.1) and cfg.lr_at(9) == 1.0 and cfg.lr_at(50) == 1.0
    assert cfg.lr_at(90) == pytest.approx(0.5) and cfg.lr_at(99) == pytest.approx(0.05)
    assert cfg.sparsity_at(9) == pytest.approx(0.5) and cfg.sparsity_at(40) == 1.0


def test_train_from_a_store_with_a_sweep_over_two_hooks(tmp_path, sae_store):
    out = train(
        sae_store,
        "encoder.out,encoder.blocks.0",
        out=tmp_path / "run",
        arch="topk",
        width=48,
        sweep="k=4,8",
        steps=30,
        batch_size=64,
        device="cpu",
        autocast="none",
        log_every=10,
        eval_every=15,
        checkpoint_every=10,
    )
    names = sorted(p.name for p in out.iterdir() if (p / "cfg.json").is_file())
    assert names == ["encoder.blocks.0-k4", "encoder.blocks.0-k8", "encoder.out-k4", "encoder.out-k8"]
    sae = SparseAutoencoder.from_pretrained(out / "encoder.out-k8")
    assert (sae.cfg.hook_name, sae.cfg.model_name, sae.cfg.k) == ("encoder.out", "synthetic", 8)
    doc = json.loads((out / "encoder.out-k8" / "cfg.json").read_text())["whisper_sae"]["training"]
    assert doc["data"]["val_utterances"] == 2 and doc["held_out"]["rows"] == 120


def test_epochs_of_hooks_with_different_row_counts_follow_the_largest(tmp_path, synth, caplog):
    """Frames (60 per utterance) and decoder tokens (6 per utterance) trained in one pass: --epochs 2 means two
    passes over the frames (the tokens are passed over ten times as often), and a warning says so."""
    from whisper_sae.activations import StoreWriter

    hooks = {"encoder.out": {"d_model": synth.d, "kind": "frame"}, "decoder.out": {"d_model": synth.d, "kind": "token"}}
    path = tmp_path / "store"
    with StoreWriter(
        path,
        hooks=hooks,
        model={"name": "synthetic", "d_model": synth.d},
        corpus="synthetic",
        settings={"mode": "padded"},
        shard_rows=256,
    ) as writer:
        for u in range(10):
            idx = writer.begin_utterance({"id": f"utt{u}", "duration": 1.2})
            writer.add("encoder.out", idx, synth.rows(60, seed=u), torch.arange(60), torch.arange(60) * 0.02)
            writer.add("decoder.out", idx, synth.rows(6, seed=50 + u), torch.arange(6), torch.arange(6) * 0.2)
            writer.end_utterance(idx)
    common = dict(arch="topk", width=32, k=4, batch_size=60, holdout=0.2, device="cpu", autocast="none")
    with caplog.at_level("WARNING"):
        out = train(path, "encoder.out,decoder.out", out=tmp_path / "run", epochs=2, **common)
    training = json.loads((out / "encoder.out" / "cfg.json").read_text())["whisper_sae"]["training"]
    # 8 training utterances: 480 frames and 48 tokens; two passes over 480 frames in batches of 60 = 16 steps
    assert training["steps"] == 16
    assert training["data"]["epochs"] == pytest.approx({"encoder.out": 2.0, "decoder.out": 20.0})
    assert "decoder.out is passed over 10x as often" in caplog.text


def test_train_cli_and_resume_against_another_store(tmp_path, sae_store):
    from whisper_sae.activations import StoreWriter
    from whisper_sae.cli import main

    args = [
        "train",
        "--store",
        str(sae_store.path),
        "--out",
        str(tmp_path / "run"),
        "--arch",
        "relu",
        "--width",
        "48",
        "--steps",
        "20",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--autocast",
        "none",
        "--log-every",
        "5",
        "--eval-every",
        "10",
        "--checkpoint-every",
        "10",
    ]
    assert main(args) == 0
    assert (tmp_path / "run" / "cfg.json").is_file() and (tmp_path / "run" / "loss.png").is_file()

    other = tmp_path / "other"
    with StoreWriter(
        other,
        hooks={"encoder.out": {"d_model": D, "kind": "frame"}},
        model={"name": "base", "spec": "base"},
        settings={"mode": "padded"},
    ) as writer:
        for u in range(4):
            idx = writer.begin_utterance({"id": f"u{u}"})
            writer.add("encoder.out", idx, torch.randn(40, D), torch.arange(40))
            writer.end_utterance(idx)
    resumed = [a if a != str(sae_store.path) else str(other) for a in args] + ["--resume"]
    assert main(resumed) == 1  # the checkpoint was made from another model's store: refused
    with pytest.raises(ValueError, match="model 'synthetic', but these have model 'base'"):
        train(
            other,
            "encoder.out",
            out=tmp_path / "run",
            arch="relu",
            width=48,
            steps=20,
            batch_size=64,
            device="cpu",
            autocast="none",
            log_every=5,
            eval_every=10,
            checkpoint_every=10,
            resume=True,
        )


def test_train_cli_passes_the_jumprelu_knobs(tmp_path, sae_store):
    from whisper_sae.cli import main

    args = [
        "train",
        "--store",
        str(sae_store.path),
        "--out",
        str(tmp_path / "jr"),
        "--arch",
        "jumprelu",
        "--width",
        "48",
        "--steps",
        "10",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--autocast",
        "none",
        "--checkpoint-every",
        "10",
        "--jumprelu-threshold-lr",
        "10",
        "--jumprelu-bandwidth",
        "0.02",
        "--jumprelu-init-threshold",
        "0.3",
    ]
    assert main(args) == 0
    meta, _ = read_checkpoint(tmp_path / "jr" / "checkpoint" / "state.json")
    options = meta["config"]["architectures"]["jumprelu"]
    assert (options["threshold_lr"], options["bandwidth"], options["init_threshold"]) == (10.0, 0.02, 0.3)
    record = json.loads((tmp_path / "jr" / "cfg.json").read_text())["whisper_sae"]["training"]
    assert record["options"] == options


def test_a_diverged_run_keeps_the_last_state_that_gave_a_finite_loss(tmp_path, synth):
    """lr 1e30 blows the weights up to ~1e30 in one step (still finite); that state must not be kept as 'good'."""
    spec = _specs()[:1]
    fit(spec, synth.stream(), _config(checkpoint_every=5), tmp_path, stop_after=10)
    with pytest.raises(TrainingError, match=r"as large as .* at step 11 .*diverged.*last good state \(step 10\)"):
        fit(spec, synth.stream(), _config(lr=1e30, lr_warmup_steps=1, checkpoint_every=1), tmp_path, resume=True)
    meta, tensors = read_checkpoint(tmp_path / "checkpoint" / "state.json")
    assert meta["step"] == 10
    weights = [t for key, t in tensors.items() if "/model/" in key]
    assert weights and all(bool(torch.isfinite(t).all()) and float(t.abs().max()) < 1e3 for t in weights)


def test_a_run_that_diverges_at_once_keeps_nothing(tmp_path, synth):
    with pytest.raises(TrainingError, match="no good state had been checkpointed yet, so none is kept"):
        fit(_specs()[:1], synth.stream(), _config(lr=1e30, lr_warmup_steps=1, checkpoint_every=1), tmp_path)
    assert not (tmp_path / "checkpoint" / "state.json").exists()


def test_the_store_is_recorded_relative_to_the_sae(tmp_path, sae_store):
    from whisper_sae.artifacts import resolve_path

    out = train(
        sae_store,
        "encoder.out",
        out=tmp_path / "sae",
        arch="topk",
        width=48,
        k=4,
        steps=5,
        batch_size=64,
        device="cpu",
        autocast="none",
    )
    recorded = json.loads((out / "cfg.json").read_text())["whisper_sae"]["training"]["data"]["store"]
    assert recorded == "../store" and resolve_path(recorded, out) == str(sae_store.path)


def test_resume_refuses_another_hook(tmp_path, sae_store):
    common = dict(arch="relu", width=48, steps=20, batch_size=64, device="cpu", autocast="none", checkpoint_every=10)
    train(sae_store, "encoder.out", out=tmp_path / "run", stop_after=10, **common)
    with pytest.raises(ValueError, match=r"cannot resume .*hook_name 'encoder.out' \(now 'encoder.blocks.0'\)"):
        train(sae_store, "encoder.blocks.0", out=tmp_path / "run", resume=True, **common)


def test_a_prefixed_corpus_spec_is_kept_as_written(tmp_path):
    """A store records ``ravdess:DIR`` as given; reading it back must not join it to the store's folder."""
    from whisper_sae.artifacts import record_path, resolve_path

    corpus = tmp_path / "clips"
    corpus.mkdir()
    store = tmp_path / "store"
    store.mkdir()
    for spec in (f"ravdess:{corpus}", f"so=kaldi:{corpus}?every=10"):
        assert record_path(spec, store) == spec
        assert resolve_path(spec, store) == spec
    assert resolve_path(record_path(str(corpus), store), store) == str(corpus)  # plain paths still move with it

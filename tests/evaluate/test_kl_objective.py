"""The KL objective (``sae/kl.py``) and KL fine-tuning (``sae/kl_training.py``) on a tiny random Whisper."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from whisper_sae.evaluate.splice import condition_transform, splice_fn
from whisper_sae.sae.kl import KLItem, SplicedWhisper, kl_of, token_kl
from whisper_sae.whisper import frames_for_duration, patch

from .conftest import identity_sae, random_sae


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def items_of(lw, utterances) -> list[KLItem]:
    prompt = list(lw.prompt_ids)
    return [
        KLItem(
            u.id, u.audio, [*prompt, *lw.text_tokens(u.text), lw.eot_id], len(prompt), frames_for_duration(u.duration)
        )
        for u in utterances
    ]


def _whisper_logits(lw, batch, fn=None, hook=None):
    """Logits at the predicting positions from Whisper's own forward pass (optionally under a patch)."""

    def run():
        with torch.no_grad():
            return lw.model(input_features=batch.features, decoder_input_ids=batch.ids, use_cache=False).logits

    if fn is None:
        return run()[batch.predicting]
    with patch(lw.model, hook, fn):
        return run()[batch.predicting]


HOOKS = ["encoder.blocks.0", "encoder.out", "decoder.blocks.0", "decoder.out"]


@pytest.mark.parametrize("hook", HOOKS)
def test_clean_suffix_is_whisper_and_splice_matches_the_spliced_evaluation(eval_whisper, tone_utterances, hook):
    runner = SplicedWhisper(eval_whisper, hook)
    batch = runner.prepare(items_of(eval_whisper, tone_utterances))
    acts = runner.prefix(batch)
    mask = runner.mask(batch, acts)
    torch.testing.assert_close(
        runner.clean_logits(batch, acts), _whisper_logits(eval_whisper, batch), atol=1e-4, rtol=0
    )
    sae = random_sae(32, hook, seed=1)
    with torch.no_grad():
        ours = runner.spliced_logits(batch, acts, mask, sae.decode(sae.encode(acts[mask])))
    theirs = _whisper_logits(eval_whisper, batch, splice_fn(condition_transform("spliced", sae), mask), hook)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    assert float((ours - runner.clean_logits(batch, acts)).abs().max()) > 1e-2  # the splice does change them
    if hook.startswith("encoder"):  # padding frames were left alone: only the first frames are replaced
        assert int(mask.sum()) == sum(it.frames for it in batch.items) < mask.numel()


@pytest.mark.parametrize("hook", HOOKS)
def test_kl_of_an_identity_sae_is_zero(eval_whisper, tone_utterances, hook):
    items = items_of(eval_whisper, tone_utterances)
    runner = SplicedWhisper(eval_whisper, hook)
    assert abs(kl_of(runner, identity_sae(32, hook), items)) <= 1e-6
    # and through the training objective (the ReLU step with its L1 term), as the trainer computes it
    from whisper_sae.sae.architectures import get_architecture

    sae = identity_sae(32, hook).train()
    objective = get_architecture("relu").objective(sae, get_architecture("relu").options())
    batch = runner.prepare(items)
    acts = runner.prefix(batch)
    mask = runner.mask(batch, acts)
    out = objective.step(acts[mask], 0.0, None)
    kl = token_kl(runner.clean_logits(batch, acts), runner.spliced_logits(batch, acts, mask, out.x_hat))
    assert abs(float(kl.detach())) <= 1e-6
    assert abs(kl_of(runner, random_sae(32, hook), items)) > 1e-3  # a poor SAE is not


@pytest.mark.parametrize("hook", ["encoder.blocks.0", "decoder.blocks.1"])
@pytest.mark.parametrize("arch", ["topk", "relu", "jumprelu", "batchtopk"])
def test_gradient_reaches_only_the_sae(eval_whisper, tone_utterances, hook, arch):
    from whisper_sae.sae import SAEConfig, SparseAutoencoder
    from whisper_sae.sae.architectures import get_architecture

    torch.manual_seed(3)
    k = 4 if get_architecture(arch).needs_k else None
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=64, architecture=arch, k=k, hook_name=hook))
    options = get_architecture(arch).options({"init_threshold": 0.05} if arch == "jumprelu" else None)
    objective = get_architecture(arch).objective(sae, options)
    runner = SplicedWhisper(eval_whisper, hook)
    batch = runner.prepare(items_of(eval_whisper, tone_utterances))
    acts = runner.prefix(batch)
    mask = runner.mask(batch, acts)
    out = objective.step(acts[mask], 1.0, None)
    loss = token_kl(runner.clean_logits(batch, acts), runner.spliced_logits(batch, acts, mask, out.x_hat))
    loss = loss + (out.loss - out.mse)
    loss.backward()
    for name, p in eval_whisper.model.named_parameters():
        assert not p.requires_grad and p.grad is None, name
    for name, p in sae.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()) and float(p.grad.abs().max()) > 0, name


def test_token_kl_refuses_mismatched_logits():
    with pytest.raises(ValueError, match="must both be"):
        token_kl(torch.zeros(3, 5), torch.zeros(3, 4))


# ------------------------------------------------------------------------------------ fine-tuning


def _write_librispeech(folder, utterances):
    chapter = folder / "train" / "1" / "2"
    chapter.mkdir(parents=True)
    lines = []
    for i, u in enumerate(utterances):
        sf.write(chapter / f"1-2-{i:04d}.flac", u.audio, 16000)
        lines.append(f"1-2-{i:04d} {u.text.upper()}")
    (chapter / "1-2.trans.txt").write_text("\n".join(lines) + "\n")
    return folder / "train"


@pytest.fixture
def parent_sae(tmp_path, eval_whisper_dir):
    from whisper_sae.sae import SAEConfig, SparseAutoencoder

    torch.manual_seed(5)
    cfg = SAEConfig(
        d_in=32,
        d_sae=64,
        architecture="topk",
        k=4,
        hook_name="encoder.out",
        model_name=eval_whisper_dir.name,
        model_spec=str(eval_whisper_dir),
        activation_scale=0.5,
    )
    folder = tmp_path / "parent"
    SparseAutoencoder(cfg).save_pretrained(folder, training={"coef": 0.0, "loss": "mse"})
    return folder


FT = dict(device="cpu", utterances_per_step=2, log_every=1, eval_every=2, checkpoint_every=2, lr=1e-2)


def test_finetune_writes_a_normal_sae_folder_that_evaluate_reads(parent_sae, eval_whisper, tone_utterances, tmp_path):
    from whisper_sae.evaluate import evaluate
    from whisper_sae.sae import SparseAutoencoder
    from whisper_sae.sae.kl_training import finetune

    out = finetune(parent_sae, tone_utterances, model=eval_whisper, steps=12, **FT)
    assert out == tmp_path / "parent-kl"
    doc = json.loads((out / "cfg.json").read_text())
    training = doc["whisper_sae"]["training"]
    assert training["loss"] == "kl" and training["parent"]["path"] == str(parent_sae.resolve())
    assert doc["whisper_sae"]["activation_scale"] == 0.5 and doc["k"] == 4 and doc["hook_name"] == "encoder.out"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert len(train) == 12 and all(r["kl"] >= 0 and r["utterances_per_s"] > 0 for r in train)
    assert (out / "loss.png").is_file()
    # the KL went down: the fine-tuned SAE spliced in moves Whisper's logits less than its parent
    runner = SplicedWhisper(eval_whisper, "encoder.out")
    items = items_of(eval_whisper, tone_utterances)
    before = kl_of(runner, SparseAutoencoder.from_pretrained(parent_sae), items)
    after = kl_of(runner, SparseAutoencoder.from_pretrained(out), items)
    assert after < 0.7 * before, (before, after)
    result = evaluate(out, tone_utterances, model=eval_whisper, max_new_tokens=4, progress=False)
    assert result.error_term_check["passed"]
    parent = evaluate(
        parent_sae, tone_utterances, model=eval_whisper, max_new_tokens=4, progress=False, out=tmp_path / "e"
    )
    gap = lambda r: abs(r.conditions["spliced"]["ce"] - r.conditions["clean"]["ce"])
    assert gap(result) < gap(parent)  # the spliced CE moved toward clean Whisper's


@pytest.mark.parametrize("objective", ["kl", "mse"])
def test_a_finetune_that_barely_moves_saves_its_parent(parent_sae, eval_whisper, tone_utterances, tmp_path, objective):
    """The parent's weights are unfolded with its activation_scale (0.5 here) and folded back on saving: with
    a learning rate too small to move anything, the saved SAE is the parent, decoder included. The parent is
    laid out as `train` writes one: unit decoder rows in normalised units, so norm 1/scale = 2 once folded
    (the trainer renormalises the rows, which hid a decoder saved without its scale)."""
    from safetensors.torch import load_file

    from whisper_sae.sae import SparseAutoencoder
    from whisper_sae.sae.kl_training import finetune

    sae = SparseAutoencoder.from_pretrained(parent_sae)
    with torch.no_grad():
        sae.W_dec.copy_(sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True) / sae.cfg.activation_scale)
        sae.b_dec.copy_(torch.randn(sae.cfg.d_in) / sae.cfg.activation_scale)
    folded = tmp_path / "folded-parent"
    sae.save_pretrained(folded, training={"coef": 0.0, "loss": "mse"})
    out = finetune(folded, tone_utterances, model=eval_whisper, steps=2, objective=objective, **{**FT, "lr": 1e-12})
    parent, child = load_file(folded / "sae_weights.safetensors"), load_file(out / "sae_weights.safetensors")
    assert set(parent) == set(child)
    for key in parent:
        torch.testing.assert_close(child[key], parent[key], atol=1e-6, rtol=1e-6, msg=key)


@pytest.mark.parametrize("objective", ["kl", "kl+mse", "mse"])
def test_finetune_resumed_equals_uninterrupted(parent_sae, eval_whisper, tone_utterances, tmp_path, objective):
    from safetensors.torch import load_file

    from whisper_sae.sae.kl_training import finetune

    common = dict(model=eval_whisper, steps=6, objective=objective, **FT)
    whole = finetune(parent_sae, tone_utterances, out=tmp_path / "whole", **common)
    part = finetune(parent_sae, tone_utterances, out=tmp_path / "part", stop_after=3, **common)
    assert not (part / "cfg.json").exists()  # stopped: only the checkpoint
    finetune(parent_sae, tone_utterances, out=tmp_path / "part", resume=True, **common)
    a, b = load_file(whole / "sae_weights.safetensors"), load_file(part / "sae_weights.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    lines = lambda f: [json.loads(x) for x in (f / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines(whole)] == [r["step"] for r in lines(part)]


def test_resume_refuses_another_objective(parent_sae, eval_whisper, tone_utterances, tmp_path):
    from whisper_sae.sae.kl_training import finetune

    out = tmp_path / "ft"
    finetune(parent_sae, tone_utterances, out=out, model=eval_whisper, steps=4, stop_after=2, **FT)
    with pytest.raises(ValueError, match="objective"):
        finetune(
            parent_sae, tone_utterances, out=out, model=eval_whisper, steps=4, resume=True, objective="kl+mse", **FT
        )


def test_cli_finetune_and_train_objective_kl(eval_whisper_dir, tone_utterances, tmp_path, capsys):
    """`whisper-sae extract`, `train --objective kl` from scratch, then `finetune` of the result on its store."""
    from whisper_sae.cli import main

    corpus = _write_librispeech(tmp_path / "ls", tone_utterances)
    store = tmp_path / "store"
    assert (
        main(
            [
                "extract",
                "--model",
                str(eval_whisper_dir),
                "--corpus",
                str(corpus),
                "--hooks",
                "encoder.blocks.0",
                "--out",
                str(store),
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--no-progress",
            ]
        )
        == 0
    )
    sae = tmp_path / "sae"
    assert (
        main(
            [
                "train",
                "--store",
                str(store),
                "--hook",
                "encoder.blocks.0",
                "--out",
                str(sae),
                "--arch",
                "topk",
                "--width",
                "64",
                "--k",
                "4",
                "--steps",
                "4",
                "--objective",
                "kl",
                "--utterances-per-step",
                "2",
                "--holdout",
                "0.34",
                "--device",
                "cpu",
                "--log-every",
                "1",
            ]
        )
        == 0
    )
    cfg = json.loads((sae / "cfg.json").read_text())["whisper_sae"]
    assert cfg["training"]["loss"] == "kl" and cfg["training"]["data"]["train_utterances"] == 2
    assert (
        main(
            [
                "finetune",
                str(sae),
                "--store",
                str(store),
                "--objective",
                "kl+mse",
                "--mse-weight",
                "0.5",
                "--steps",
                "2",
                "--utterances-per-step",
                "2",
                "--holdout",
                "0.34",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    ft = tmp_path / "sae-klmse"
    training = json.loads((ft / "cfg.json").read_text())["whisper_sae"]["training"]
    assert training["loss"] == "kl+mse" and training["kl"]["mse_weight"] == 0.5
    assert training["held_out"]["rows"] > 0  # the store's held-out utterance gave the held-out records
    assert "fine-tuned SAE written to" in capsys.readouterr().out


def test_finetune_at_a_decoder_hook_lowers_the_kl(eval_whisper, eval_whisper_dir, tone_utterances, tmp_path):
    from whisper_sae.sae import SAEConfig, SparseAutoencoder
    from whisper_sae.sae.kl_training import finetune

    torch.manual_seed(2)
    cfg = SAEConfig(
        d_in=32,
        d_sae=64,
        architecture="relu",
        hook_name="decoder.blocks.0",
        model_name=eval_whisper_dir.name,
        model_spec=str(eval_whisper_dir),
    )
    parent = SparseAutoencoder(cfg).save_pretrained(tmp_path / "dec")
    out = finetune(parent, tone_utterances, model=eval_whisper, steps=10, coef=0.01, **FT)
    runner = SplicedWhisper(eval_whisper, "decoder.blocks.0")
    items = items_of(eval_whisper, tone_utterances)
    before = kl_of(runner, SparseAutoencoder.from_pretrained(parent), items)
    after = kl_of(runner, SparseAutoencoder.from_pretrained(out), items)
    assert after < 0.7 * before, (before, after)
    assert json.loads((out / "cfg.json").read_text())["whisper_sae"]["training"]["coef"] == 0.01


def test_cli_finetune_takes_several_corpora(parent_sae, eval_whisper_dir, tone_utterances, tmp_path):
    """`finetune --corpus A --corpus B` trains on the utterances of both (repeatable like extract's)."""
    from whisper_sae.cli import main

    first = _write_librispeech(tmp_path / "a", tone_utterances[:1])
    second = _write_librispeech(tmp_path / "b", tone_utterances[1:])
    common = ["--model", str(eval_whisper_dir), "--steps", "1", "--utterances-per-step", "1", "--device", "cpu"]
    args = ["finetune", str(parent_sae), *common]
    assert main([*args, "--corpus", str(first), "--corpus", str(second), "--out", str(tmp_path / "both")]) == 0
    assert main([*args, "--corpus", str(second), "--out", str(tmp_path / "one")]) == 0
    both = json.loads((tmp_path / "both" / "cfg.json").read_text())["whisper_sae"]["training"]["data"]
    one = json.loads((tmp_path / "one" / "cfg.json").read_text())["whisper_sae"]["training"]["data"]
    assert (both["train_utterances"], one["train_utterances"]) == (3, 2)
    assert both["corpus"] != one["corpus"]

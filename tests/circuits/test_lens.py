"""Layer lenses on tiny random Whispers: the last layer's lens is Whisper, earlier layers are decoded
from their own residual stream, and the files and CLI work. The real-model check is marked slow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from whisper_sae.audio import Utterance
from whisper_sae.circuits import encoder_lens
from whisper_sae.cli import main
from whisper_sae.evaluate import corpus_wer
from whisper_sae.whisper import capture, load_whisper, patch

TEXTS = ["the quick brown fox", "hello world", "a small test of the lens", "one two three four five"]


@pytest.fixture(scope="module")
def lw(tmp_path_factory, tiny_random_whisper_writer):
    """A tiny random Whisper (2 encoder, 2 decoder blocks, real tokenizer) with large weights, so that
    layers give visibly different transcripts."""
    return load_whisper(tiny_random_whisper_writer(tmp_path_factory.mktemp("lens_model"), init_std=0.2))


def utterances(n=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(int((0.8 + 0.6 * i) * 16000)) / 16000
        audio = 0.2 * np.sin(2 * np.pi * (150 + 90 * i) * t) + 0.05 * rng.standard_normal(len(t))
        out.append(Utterance(id=f"u{i}", audio=audio.astype(np.float32), text=TEXTS[i % len(TEXTS)]))
    return out


def test_last_layer_lens_is_whisper(lw):
    utts = utterances()
    result = encoder_lens(lw, utts, batch_size=3, max_new_tokens=12)
    assert [row["hook"] for row in result.encoder] == ["encoder.blocks.0", "encoder.blocks.1"]
    assert [row["hook"] for row in result.decoder] == ["decoder.blocks.0", "decoder.blocks.1"]
    # Transcripts of the last block's lens are Whisper's own, utterance by utterance.
    plain = lw.transcribe([u.audio for u in utts], max_new_tokens=12)
    assert [row["plain"] for row in result.utterances] == plain
    assert [row["layers"][-1] for row in result.utterances] == plain
    assert result.checks["last_layer_same_transcripts"] == len(utts)
    wer = corpus_wer([u.text for u in utts], plain)
    assert result.encoder[-1]["wer"] == pytest.approx(wer) and result.plain["wer"] == pytest.approx(wer)
    for i, row in enumerate(result.encoder):
        assert row["median_utterance_wer"] == pytest.approx(np.median([u["layer_wer"][i] for u in result.utterances]))
    # The logit lens at the last block is Whisper's logits: same top-1 and CE.
    assert result.checks["logit_lens_max_abs_diff"] < 1e-4
    assert result.decoder[-1]["top1"] == result.plain["top1"]
    assert result.decoder[-1]["ce"] == pytest.approx(result.plain["ce"], rel=1e-5)
    n_tokens = sum(len(lw.text_tokens(u.text)) + 1 for u in utts)  # text tokens and the end token
    assert all(row["n_tokens"] == n_tokens for row in result.decoder)


def test_earlier_layers_are_decoded_from_their_own_residual(lw):
    """Layer i's lens transcript is Whisper's transcript with encoder.out replaced by layer_norm(block i):
    the same computation written with patch()."""
    utts = utterances(3)
    result = encoder_lens(lw, utts, batch_size=3, max_new_tokens=10, logit_lens=False)
    audios = [u.audio for u in utts]
    norm = lw.model.model.encoder.layer_norm
    for i in range(1):
        with torch.no_grad(), capture(lw, [f"encoder.blocks.{i}"]) as acts:
            lw.model.model.encoder(lw.log_mel(audios))
        # (F.layer_norm with the module's weights: calling the hooked module inside its own hook would recurse)
        lens = torch.nn.functional.layer_norm(
            acts[f"encoder.blocks.{i}"], (lw.d_model,), norm.weight, norm.bias, norm.eps
        )
        with patch(lw, "encoder.out", lambda a, lens=lens: lens):
            expected = lw.transcribe(audios, max_new_tokens=10, batch_size=3)
        assert [row["layers"][i] for row in result.utterances] == expected
    # With random weights, the layers give different transcripts (the lens does read each layer).
    by_layer = [tuple(row["layers"][i] for row in result.utterances) for i in range(2)]
    assert len(set(by_layer)) > 1
    assert result.decoder == [] and result.checks["logit_lens_max_abs_diff"] is None


def test_logit_lens_by_hand(lw):
    utts = utterances(2)
    result = encoder_lens(lw, utts, max_new_tokens=4)
    prompt = list(lw.prompt_ids)
    correct, nll, n = 0, 0.0, 0
    for u in utts:
        ids = prompt + lw.text_tokens(u.text) + [lw.eot_id]
        with torch.no_grad(), capture(lw, ["decoder.blocks.0"]) as acts:
            lw.model(input_features=lw.log_mel([u.audio]), decoder_input_ids=torch.tensor([ids]))
            logits = lw.model.proj_out(lw.model.model.decoder.layer_norm(acts["decoder.blocks.0"]))[0]
        pred, target = logits[len(prompt) - 1 : -1], torch.tensor(ids[len(prompt) :])
        correct += int((pred.argmax(-1) == target).sum())
        nll += float(torch.nn.functional.cross_entropy(pred, target, reduction="sum"))
        n += len(target)
    assert result.decoder[0]["top1"] == pytest.approx(correct / n)
    assert result.decoder[0]["ce"] == pytest.approx(nll / n, rel=1e-4)


def test_files_and_skips(lw, tmp_path):
    utts = utterances(2) + [
        Utterance(id="no-text", audio=np.zeros(8000, np.float32)),
        Utterance(id="long", audio=np.zeros(16000 * 31, np.float32), text="too long"),
    ]
    result = encoder_lens(lw, utts, max_new_tokens=4, out=tmp_path / "lens")
    assert result.n_utterances == 2
    assert {s["id"]: s["reason"] for s in result.skipped} == {
        "no-text": "no reference transcript",
        "long": "31.0 s is longer than one 30-s window",
    }
    data = json.loads((tmp_path / "lens" / "lens.json").read_text())
    assert [row["hook"] for row in data["encoder"]] == [row["hook"] for row in result.encoder]
    assert len(data["utterances"]) == 2 and len(data["utterances"][0]["layers"]) == 2
    md = (tmp_path / "lens" / "lens.md").read_text()
    assert "| encoder.blocks.1 |" in md and "| decoder.blocks.1 |" in md and "lens.png" in md
    assert (tmp_path / "lens" / "lens.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_lens(lw, tmp_path, capsys):
    import soundfile as sf

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for u in utterances(2):
        sf.write(corpus / f"{u.id}.flac", u.audio, 16000, subtype="PCM_16")
    args = ["lens", "--model", str(lw.spec), "--corpus", str(corpus), "--out", str(tmp_path / "o"), "--no-progress"]
    # audio without transcripts: the lens needs them and says so in one line
    assert main(args) == 1
    assert "has no utterance with a reference transcript" in capsys.readouterr().err
    (corpus / "c.trans.txt").write_text("".join(f"{u.id} {u.text}\n" for u in utterances(2)))
    assert main(args + ["--max-new-tokens", "3", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "| encoder.blocks.1 |" in out and "| decoder.blocks.1 |" in out
    assert json.loads((tmp_path / "o" / "lens.json").read_text())["n_utterances"] == 2
    assert main(args + ["--batch-size", "0"]) == 1
    assert "--batch-size must be at least 1" in capsys.readouterr().err

"""Real tiny.en on four short synthetic utterances: an exact identity SAE, and a broken encoder."""

from __future__ import annotations

import pytest

from whisper_sae.audio import load_corpus
from whisper_sae.evaluate import evaluate

from .conftest import identity_sae

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_en():
    from whisper_sae.whisper import load_whisper

    return load_whisper("tiny.en")


def test_identity_sae_keeps_tiny_en_exactly_and_zero_ablation_breaks_it(tiny_en, synth_corpus, tmp_path):
    sae = identity_sae(tiny_en.d_model, "encoder.out", model_name="tiny.en")
    result = evaluate(
        sae, load_corpus(synth_corpus), model=tiny_en, max_utterances=4, batch_size=4, out=tmp_path, progress=False
    )
    clean, spliced = result.conditions["clean"], result.conditions["spliced"]
    assert result.n_utterances == 4
    # eSpeak's robotic voices are hard for tiny.en (about half the words right), but it hears speech
    assert clean["wer"] < 0.75, [r["clean"]["text"] for r in result.utterances]
    # an exact reconstruction changes nothing: same words, same cross-entropy to the last bit
    assert spliced["errors"] == clean["errors"] and spliced["ce"] == clean["ce"]
    assert [r["spliced"]["text"] for r in result.utterances] == [r["clean"]["text"] for r in result.utterances]
    assert result.ce_recovered["zero"] == 1.0 and result.ce_recovered["mean"] == 1.0
    # with nothing from the audio, Whisper cannot transcribe: nearly every word is wrong
    assert result.conditions["zero"]["wer"] > max(0.85, clean["wer"] + 0.3)
    assert result.conditions["mean"]["wer"] > max(0.85, clean["wer"] + 0.3)
    assert result.conditions["zero"]["ce"] > clean["ce"] + 1.0
    check = result.error_term_check
    assert check["passed"] and check["max_abs_logit_diff"] == 0
    assert (tmp_path / "eval.md").exists() and (tmp_path / "eval_utterances.jsonl").exists()

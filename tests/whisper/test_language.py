"""Language detection (the language tokens' probabilities at the first decoder step) on tiny random Whispers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whisper_sae.whisper import load_whisper, patch
from whisper_sae.whisper.language import (
    detect_language,
    language_probabilities,
    language_probabilities_from_encoder,
    language_tokens,
)

from .conftest import tiny_model


@pytest.fixture(scope="module")
def multi_lw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_multi")
    tiny_model(multilingual=True).save_pretrained(folder)
    return load_whisper(folder)


def _clips():
    rng = np.random.default_rng(0)
    return [rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 24000, 8000)]


def test_language_tokens_are_whispers_languages_in_token_order(multi_lw):
    tokens = language_tokens(multi_lw)
    assert len(tokens) == 99  # multilingual vocabulary of 51865: en … su
    assert list(tokens)[:3] == ["en", "zh", "de"]
    assert tokens["en"] == multi_lw.prompt_ids[0] + 1
    assert sorted(tokens.values()) == list(tokens.values())
    assert multi_lw.tokenizer.convert_ids_to_tokens(tokens["fr"]) == "<|fr|>"


def test_probabilities_sum_to_one_and_match_the_encoder_route(multi_lw):
    clips = _clips()
    result = language_probabilities(multi_lw, clips, batch_size=2)
    assert result.probs.shape == (3, 99)
    np.testing.assert_allclose(result.probs.sum(1), 1.0, atol=1e-5)
    with torch.inference_mode():
        hidden = multi_lw.model.model.encoder(multi_lw.log_mel(clips)).last_hidden_state
    direct = language_probabilities_from_encoder(multi_lw, hidden)
    np.testing.assert_allclose(direct.probs, result.probs, atol=1e-5)
    assert detect_language(multi_lw, clips) == result.top()
    assert result.of("de").shape == (3,)
    with pytest.raises(ValueError, match="xx"):
        result.of("xx")


def test_a_patch_that_pushes_toward_german_makes_german_detected(multi_lw):
    clips = _clips()
    before = language_probabilities(multi_lw, clips)
    de = multi_lw.model.get_output_embeddings().weight[language_tokens(multi_lw)["de"]].detach()
    with patch(multi_lw.model, "decoder.out", lambda acts: acts + 50 * de / de.norm()):
        after = language_probabilities(multi_lw, clips)
    assert after.top() == ["de"] * 3
    assert (after.of("de") > before.of("de")).all()


def test_english_only_model_is_refused(tiny_lw):
    with pytest.raises(ValueError, match="English-only"):
        language_tokens(tiny_lw)

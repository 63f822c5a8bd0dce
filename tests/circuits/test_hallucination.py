"""Hallucination rate on the non-speech corpus with a tiny random Whisper: counting per kind, the
normaliser deciding what is a word, long clips cut into windows, and the no-speech probability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whisper_sae.audio import Utterance, load_corpus
from whisper_sae.audio.nonspeech import make_nonspeech_corpus
from whisper_sae.circuits import hallucination_rate
from whisper_sae.evaluate import normalize_text
from whisper_sae.whisper import load_whisper, patch


@pytest.fixture(scope="module")
def lw(tmp_path_factory, tiny_random_whisper_writer):
    return load_whisper(tiny_random_whisper_writer(tmp_path_factory.mktemp("hall_model"), init_std=0.2))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_nonspeech_corpus(
        tmp_path_factory.mktemp("ns") / "c", n_per_kind=2, kinds=["silence", "tone", "music"], max_seconds=3
    )


def test_rates_per_kind_agree_with_transcripts(lw, corpus):
    result = hallucination_rate(lw, corpus, batch_size=4, max_new_tokens=6)
    utts = list(load_corpus(corpus))
    texts = lw.transcribe([u.audio for u in utts], max_new_tokens=6)
    expected = {u.id: any(ch.isalnum() for ch in normalize_text(t)) for u, t in zip(utts, texts)}
    assert {c["id"]: c["hallucinated"] for c in result.clips} == expected
    assert [c["transcript"] for c in result.clips] == texts
    assert set(result.groups) == {"silence", "tone", "music"}
    for kind, g in result.groups.items():
        flags = [expected[u.id] for u in utts if u.attributes["kind"] == kind]
        assert g["clips"] == 2 and g["hallucinated"] == sum(flags) and g["rate"] == sum(flags) / 2
    assert result.overall["hallucinated"] == sum(expected.values())
    assert all(0 <= c["no_speech_prob"] <= 1 for c in result.clips)
    assert "| overall | 6 |" in result.table()


def test_punctuation_only_is_not_a_hallucination(lw, corpus):
    """Push every step's logits towards "..." (through decoder.out): transcripts are dots, which hold no
    word (the normaliser leaves one "." of them), so nothing counts; pushing towards " Thank" makes every clip count."""

    def towards(token: int):
        direction = lw.model.proj_out.weight[token].detach()
        return lambda acts: acts + 40 * direction / direction.norm() ** 2 * 10

    dots = lw.tokenizer.convert_tokens_to_ids("...")
    with patch(lw, "decoder.out", towards(dots)):
        result = hallucination_rate(lw, corpus, max_new_tokens=3)
    assert all(set(c["transcript"]) <= {"."} and c["transcript"] for c in result.clips)
    assert result.overall["rate"] == 0.0
    thank = lw.tokenizer.encode(" Thank", add_special_tokens=False)[0]
    with patch(lw, "decoder.out", towards(thank)):
        result = hallucination_rate(lw, corpus, max_new_tokens=3)
    assert result.overall["rate"] == 1.0 and result.clips[0]["transcript"].startswith("Thank")


def test_long_clips_are_cut_into_windows_and_other_attributes_group(lw):
    rng = np.random.default_rng(0)
    long = Utterance(
        id="long", audio=(0.01 * rng.standard_normal(16000 * 31)).astype(np.float32), attributes={"source": "noise"}
    )
    short = Utterance(id="short", audio=np.zeros(16000, np.float32))
    result = hallucination_rate(lw, [long, short], attribute="source", max_new_tokens=4)
    pieces = lw.transcribe([long.audio[:480000], long.audio[480000:]], max_new_tokens=4)
    assert result.clips[0]["transcript"] == " ".join(p for p in pieces if p)
    assert set(result.groups) == {"noise", "(none)"}
    # the no-speech probability is the first window's, read at <|startoftranscript|>
    hidden = lw.model.model.encoder(lw.log_mel([long.audio[:480000]])).last_hidden_state
    with torch.no_grad():
        logits = lw.model(encoder_outputs=(hidden,), decoder_input_ids=torch.tensor([lw.prompt_ids])).logits
    token = lw.tokenizer.convert_tokens_to_ids("<|nocaptions|>")
    assert result.clips[0]["no_speech_prob"] == pytest.approx(float(logits[0, 0].softmax(-1)[token]), rel=1e-4)

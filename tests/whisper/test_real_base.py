"""The offline multilingual base (read from two wheels as one stream) against the CTranslate2 runtime."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from whisper_sae.whisper import load_whisper, run_encoder
from whisper_sae.whisper.offline import offline_model_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base():
    return load_whisper("base")


def test_base_shape_and_prompt(base):
    assert (base.d_model, base.n_encoder_layers, base.n_decoder_layers) == (512, 6, 6)
    assert base.is_multilingual and base.prompt_ids == [50258, 50259, 50359, 50363] and base.eot_id == 50257
    assert base.model.generation_config.alignment_heads[0] == [3, 1]


def test_base_matches_ctranslate2(base, synth_corpus, tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from whisper_sae.audio import load_corpus

    # The runtime needs one model.bin: join the parts in a temporary folder (the library never does).
    folder, parts = offline_model_files("base")
    with open(tmp_path / "model.bin", "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(folder / name, tmp_path / name)
    runtime = ctranslate2.models.Whisper(str(tmp_path), device="cpu", compute_type="float32")

    audio = next(iter(load_corpus(synth_corpus, max_utterances=1))).audio
    features = base.log_mel([audio])
    view = ctranslate2.StorageView.from_array(np.ascontiguousarray(features.numpy()))
    theirs = torch.from_numpy(np.array(runtime.encode(view, to_cpu=True)))
    ours = run_encoder(base, features, ["encoder.out"])["encoder.out"]
    assert (ours - theirs).abs().max() < 1e-2
    result = runtime.generate(view, [base.prompt_ids], beam_size=1)[0]
    assert base.transcribe([audio]) == [
        base.tokenizer.decode(result.sequences_ids[0], skip_special_tokens=True).strip()
    ]

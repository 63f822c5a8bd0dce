"""The spliced evaluation on a tiny random Whisper: exact equivalences, the checks, the files written."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from whisper_sae.evaluate import evaluate
from whisper_sae.evaluate.splice import CONDITIONS, condition_transform, splice_fn
from whisper_sae.evaluate.spliced import _Item, _prepare
from whisper_sae.whisper import HookPoint, capture, frames_for_duration, patch

from .conftest import identity_sae, random_sae

# A random model babbles until the generation limit; a few tokens are enough to compare transcripts.
FAST = dict(max_new_tokens=6, progress=False)


@pytest.mark.parametrize("hook", ["encoder.blocks.0", "decoder.blocks.1"])
def test_identity_sae_reproduces_clean_whisper_exactly(eval_whisper, tone_utterances, hook):
    result = evaluate(identity_sae(32, hook), tone_utterances, model=eval_whisper, batch_size=2, **FAST)
    assert result.n_utterances == 3
    assert result.conditions["spliced"]["ce"] == result.conditions["clean"]["ce"]
    assert result.conditions["spliced"]["errors"] == result.conditions["clean"]["errors"]
    for row in result.utterances:
        assert row["spliced"]["text"] == row["clean"]["text"]
        assert row["spliced"]["nll"] == row["clean"]["nll"]
    assert result.reconstruction.mse == 0 and result.reconstruction.explained_variance == 1
    check = result.error_term_check
    assert check["passed"] and check["max_abs_logit_diff"] == 0 and check["max_abs_ce_diff"] == 0
    # zero ablation does change a random model's outputs: the patch is really applied
    assert result.conditions["zero"]["ce"] != result.conditions["clean"]["ce"]


@pytest.mark.parametrize("hook", ["encoder.out", "decoder.blocks.0"])
def test_error_term_restores_clean_outputs_of_a_poor_sae(eval_whisper, tone_utterances, hook):
    result = evaluate(random_sae(32, hook), tone_utterances, model=eval_whisper, batch_size=3, **FAST)
    assert abs(result.conditions["spliced"]["ce"] - result.conditions["clean"]["ce"]) > 1e-3
    assert result.reconstruction.explained_variance < 0.9
    check = result.error_term_check
    assert check["max_abs_ce_diff"] < 1e-4 and check["max_abs_logit_diff"] < 1e-3
    assert check["transcripts_equal"] and check["wer_equal"] and check["passed"]


def test_batch_size_does_not_change_the_numbers(eval_whisper, tone_utterances):
    sae = random_sae(32, "encoder.out", seed=3)
    one = evaluate(sae, tone_utterances[:2], model=eval_whisper, batch_size=1, **FAST)
    two = evaluate(sae, tone_utterances[:2], model=eval_whisper, batch_size=2, **FAST)
    for name in CONDITIONS:
        assert one.conditions[name]["ce"] == pytest.approx(two.conditions[name]["ce"], abs=1e-4)
    assert one.reconstruction.mse == pytest.approx(two.reconstruction.mse, rel=1e-5)


def test_padding_frames_keep_whispers_own_values(eval_whisper, tone_utterances):
    lw, name = eval_whisper, "encoder.blocks.0"
    items = [_Item(u.id, u.audio, u.text, u.duration) for u in tone_utterances]
    batch = _prepare(lw, items)  # the batch the evaluation would build
    mask = batch.hook_mask(HookPoint.parse(name, lw.config), lw.config.max_source_positions)
    assert mask.sum(1).tolist() == [frames_for_duration(u.duration) for u in tone_utterances] == [45, 85, 65]
    with torch.inference_mode():
        with capture(lw.model, [name]) as clean:
            lw.model.model.encoder(batch.features)
        # patch first, capture second: the capture hook sees the patched output
        with patch(lw.model, name, splice_fn(condition_transform("zero", None), mask)):
            with capture(lw.model, [name]) as spliced:
                lw.model.model.encoder(batch.features)
    before, after = clean[name], spliced[name]
    assert torch.equal(after[~mask], before[~mask])
    assert torch.equal(after[mask], torch.zeros_like(before[mask]))


def test_width_mismatch_is_a_clear_error(eval_whisper, tone_utterances):
    with pytest.raises(ValueError, match="d_in=16.*width 32"):
        evaluate(identity_sae(16, "encoder.out"), tone_utterances, model=eval_whisper, **FAST)


def test_unknown_hook_and_missing_transcripts(eval_whisper, tone_utterances):
    with pytest.raises(ValueError, match="valid hooks"):
        evaluate(identity_sae(32, "encoder.blocks.7"), tone_utterances, model=eval_whisper, progress=False)
    silent = [type(u)(id=u.id, audio=u.audio) for u in tone_utterances]
    with pytest.raises(ValueError, match="reference transcript"):
        evaluate(identity_sae(32, "encoder.out"), silent, model=eval_whisper, progress=False)


def _write_librispeech(folder, utterances):
    chapter = folder / "test" / "1" / "2"
    chapter.mkdir(parents=True)
    lines = []
    for i, u in enumerate(utterances):
        sf.write(chapter / f"1-2-{i:04d}.flac", u.audio, 16000)
        lines.append(f"1-2-{i:04d} {u.text.upper()}")
    (chapter / "1-2.trans.txt").write_text("\n".join(lines) + "\n")
    return folder / "test"


def test_cli_writes_the_report_into_the_sae_folder(eval_whisper_dir, tone_utterances, tmp_path, capsys):
    from whisper_sae.cli import main

    sae_dir = identity_sae(32, "encoder.out", model_name=str(eval_whisper_dir)).save_pretrained(tmp_path / "sae")
    corpus = _write_librispeech(tmp_path / "corpus", tone_utterances)
    code = main(
        [
            "evaluate",
            str(sae_dir),
            "--corpus",
            str(corpus),
            "--max-utterances",
            "2",
            "--max-new-tokens",
            "6",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "SAE spliced + error term" in printed and "passed" in printed
    report = json.loads((sae_dir / "eval.json").read_text())
    assert report["n_utterances"] == 2 and report["meta"]["hook"] == "encoder.out"
    assert report["conditions"]["spliced"]["ce"] == report["conditions"]["clean"]["ce"]
    rows = [json.loads(line) for line in (sae_dir / "eval_utterances.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1-2-0000", "1-2-0001"]
    assert set(CONDITIONS) <= set(rows[0])
    assert (sae_dir / "feature_density.png").read_bytes()[:4] == b"\x89PNG"
    assert "| SAE spliced |" in (sae_dir / "eval.md").read_text()


def test_cli_rejects_bad_numbers(tmp_path, capsys):
    from whisper_sae.cli import main

    with pytest.raises(SystemExit) as exit_:  # a usage error, found while parsing
        main(["evaluate", str(tmp_path), "--corpus", str(tmp_path), "--max-utterances", "0"])
    assert exit_.value.code == 2
    assert "--max-utterances: must be at least 1, got 0" in capsys.readouterr().err


def test_a_baseline_lends_clean_and_ablations_without_changing_any_number(eval_whisper, tone_utterances):
    first = evaluate(random_sae(32, "encoder.out", seed=1), tone_utterances, model=eval_whisper, **FAST)
    sae = random_sae(32, "encoder.out", seed=2)
    alone = evaluate(sae, tone_utterances, model=eval_whisper, **FAST)
    lent = evaluate(sae, tone_utterances, model=eval_whisper, baseline=first, **FAST)
    assert lent.to_dict()["conditions"] == alone.to_dict()["conditions"]
    assert lent.ce_recovered == alone.ce_recovered
    with pytest.raises(ValueError, match="other utterances"):
        evaluate(sae, tone_utterances[:2], model=eval_whisper, baseline=first, **FAST)

"""``whisper-sae extract`` and ``whisper-sae store info`` end to end, and the store-size guard."""

from __future__ import annotations

import json

import soundfile as sf

from whisper_sae.activations import ActivationStore, extract
from whisper_sae.cli import main
from whisper_sae.whisper import frames_for_duration


def test_extract_cli_then_store_info(tiny_random_whisper, make_utts, tmp_path, capsys):
    corpus = tmp_path / "wavs"
    corpus.mkdir()
    utts = make_utts([1.0, 0.62])
    for u in utts:
        sf.write(corpus / f"{u.id}.wav", u.audio, 16000)
    out = tmp_path / "store"
    argv = [
        "extract",
        "--model",
        tiny_random_whisper.spec,
        "--corpus",
        str(corpus),
        "--hooks",
        "encoder.blocks.0,encoder.out",
        "--out",
        str(out),
        "--dtype",
        "float32",
        "--shard-rows",
        "40",
        "--no-progress",
    ]
    assert main(argv) == 0
    store = ActivationStore(out)
    assert store.n_rows("encoder.out") == frames_for_duration(1.0) + frames_for_duration(0.62)
    assert store.manifest["hooks"]["encoder.out"]["n_shards"] == -(-store.n_rows("encoder.out") // 40)
    capsys.readouterr()
    assert main(["store", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 done" in text and f"{store.n_rows('encoder.out')} rows" in text
    assert (
        main(
            [
                "extract",
                "--model",
                tiny_random_whisper.spec,
                "--corpus",
                str(corpus),
                "--hooks",
                "encoder.blocks.9",
                "--out",
                str(tmp_path / "bad"),
                "--no-progress",
            ]
        )
        == 1
    )
    assert "encoder.blocks.1" in capsys.readouterr().err  # the error lists valid hooks


def test_max_store_gb_stops_and_a_rerun_finishes(tiny_random_whisper, make_utts, tmp_path):
    utts = make_utts([1.0, 1.0, 1.0])
    first = extract(
        tiny_random_whisper, utts, ["encoder.out"], tmp_path / "s", max_store_gb=2e-6, shard_rows=20, progress=False
    )
    assert first.manifest["utterances"]["n_done"] == 1 and first.manifest["complete"] is False
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["info"]["stopped_at_max_store_gb"] == 2e-6
    done = extract(tiny_random_whisper, utts, ["encoder.out"], tmp_path / "s", shard_rows=20, progress=False)
    assert "stopped_at_max_store_gb" not in done.manifest["info"]
    assert done.manifest["complete"] and done.n_rows("encoder.out") == 3 * frames_for_duration(1.0)
    assert [u["id"] for u in done.utterances] == [u.id for u in utts]

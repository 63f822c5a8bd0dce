"""The main job end to end, small: real tiny.en, real eSpeak speech, every stage's files, the numbers
in the summary consistent with the files, the probe shown in the dashboard, and a rerun that redoes nothing."""

from __future__ import annotations

import json

import pytest

from whisper_sae.demo import run_demo


@pytest.mark.slow
def test_demo_runs_every_stage_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    kw = dict(minutes=1.0, eval_minutes=0.25, width=256, k=8, epochs=3, batch_size=256, progress=False)
    result = run_demo(out, **kw)
    s = result.summary
    ev = json.loads((result.sae / "eval.json").read_text())
    assert s["explained_variance"] == ev["reconstruction"]["explained_variance"]
    assert 0 < s["l0"] <= 8 and s["error_term_check_passed"] is True
    assert set(s["wer"]) >= {"clean", "spliced", "zero"}
    assert json.loads((out / "summary.json").read_text()) == s
    # The probe ran (12 voices, both genders) and the dashboard found it in SAE_DIR/probe.
    probe = json.loads((result.sae / "probe" / "probe.json").read_text())
    gender = probe["attributes"]["gender"]["probes"]["utterance"]["logreg"]
    assert s["probe"]["gender"] == {
        "sae": gender["sae"]["balanced_accuracy"],
        "raw": gender["raw"]["balanced_accuracy"],
        "chance": 0.5,
    }
    index = (result.dashboard / "index.html").read_text()
    assert (
        "gender selectivity" in index
        and "Speaker attributes" in next(result.dashboard.glob("features/*.html")).read_text()
    )
    printed = capsys.readouterr().out
    assert "[demo] done in" in printed and "gender from SAE codes" in printed
    # The shipped real-speech SAE ran on the same held-out speech, with the demo SAE's clean rows lent.
    shipped = json.loads((out / "shipped-eval" / "eval.json").read_text())
    assert s["shipped"]["name"] == "tiny.en/encoder.out-k64" and s["shipped"]["l0"] == pytest.approx(64, abs=0.5)
    assert s["shipped"]["wer"]["clean"] == s["wer"]["clean"] == shipped["conditions"]["clean"]["wer"]
    assert s["shipped"]["wer"]["spliced"] == shipped["conditions"]["spliced"]["wer"]
    assert f"shipped SAE {s['shipped']['name']}" in printed
    # A second run finds every stage's output and keeps it.
    mtime = (result.sae / "sae_weights.safetensors").stat().st_mtime_ns
    again = run_demo(out, **kw)
    assert capsys.readouterr().out.count("(already done, kept)") == 7
    assert (result.sae / "sae_weights.safetensors").stat().st_mtime_ns == mtime
    assert {k: v for k, v in again.summary.items() if k != "seconds"} == {k: v for k, v in s.items() if k != "seconds"}

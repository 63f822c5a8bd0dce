"""Bad inputs to analyze / probe / intervene / dashboard, each refused with one clear sentence that
names the thing (folder, port, frames, SAE, store, file), before any long work and without harm.

Everything runs on a tiny random Whisper (2+2 blocks, width 32) and SAEs made here.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import Utterance


def _sae(d_in=32, d_sae=48, hook="encoder.out", model_name=None):
    import torch

    from whisper_sae.sae import SAEConfig, SparseAutoencoder

    torch.manual_seed(0)
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=4, hook_name=hook, model_name=model_name)
    return SparseAutoencoder(cfg).eval()


def _tones(n=2, seconds=1.0) -> list[Utterance]:
    t = np.arange(int(seconds * 16000)) / 16000
    out = []
    for i in range(n):
        audio = (0.3 * np.sin(2 * np.pi * (180 + 70 * i) * t)).astype(np.float32)
        phones = [{"phone": "sa"[j % 2], "start": j * 0.1, "end": (j + 1) * 0.1} for j in range(int(seconds / 0.1))]
        out.append(
            Utterance(
                id=f"tone{i}",
                audio=audio,
                text="hi there",
                speaker=f"s{i}",
                attributes={"gender": "female" if i % 2 else "male"},
                alignment={"phones": phones},
            )
        )
    return out


@dataclass
class World:
    root: Path
    lw: object
    model: str
    sae48: Path
    """An SAE folder (48 features on encoder.out, width 32) with its analysis in SAE_DIR/analysis."""
    sae24: Path
    """48's sibling with 24 features (same width): another SAE than the analysis'."""
    sae16: Path
    """An SAE of width 16: another model than the tiny Whisper (width 32)."""
    bare: Path
    """An SAE folder without an analysis."""
    store: Path
    wav: Path
    utts: list


@pytest.fixture(scope="module")
def world(tiny_random_whisper_dir, tmp_path_factory) -> World:
    from whisper_sae.activations import extract
    from whisper_sae.analysis import analyze
    from whisper_sae.whisper import load_whisper

    root = tmp_path_factory.mktemp("bad_analysis_inputs")
    model = str(tiny_random_whisper_dir)
    lw = load_whisper(model)
    utts = _tones()
    sae48 = _sae(model_name=model).save_pretrained(root / "sae48")
    sae24 = _sae(d_sae=24, model_name=model).save_pretrained(root / "sae24")
    sae16 = _sae(d_in=16, model_name=model).save_pretrained(root / "sae16")
    bare = _sae(model_name=model).save_pretrained(root / "bare")
    analyze(sae48, utts, model=lw, top_n=2, progress=False)
    store = extract(lw, utts, ["encoder.out"], root / "store", progress=False).path
    wav = root / "tone.wav"
    sf.write(wav, utts[0].audio, 16000)
    return World(root, lw, model, Path(sae48), Path(sae24), Path(sae16), Path(bare), Path(store), wav, utts)


def _cli(*argv) -> None:
    """Run a subcommand so that its error is raised (``main`` would print it as one line)."""
    from whisper_sae.cli import build_parser

    args = build_parser().parse_args([str(a) for a in argv])
    args.func(args)


def _foreign(w: World):
    from whisper_sae.analysis import build_dashboard

    out = w.root / "foreign"
    out.mkdir(exist_ok=True)
    (out / "keep.txt").write_text("mine")
    (out / "features").mkdir(exist_ok=True)
    build_dashboard(w.sae48, out, progress=False)


def _foreign_kept(w: World):
    assert (w.root / "foreign" / "keep.txt").read_text() == "mine" and (w.root / "foreign" / "features").is_dir()
    assert not (w.root / "foreign" / "index.html").exists()


def _foreign_cli(w: World):
    out = w.root / "foreign-cli"
    out.mkdir(exist_ok=True)
    (out / "index.html").write_text("someone else's page")
    _cli("dashboard", w.sae48, "--out", out, "--no-progress")


def _bad_manifest(w: World):
    from whisper_sae.analysis import build_dashboard

    out = w.root / "bad-manifest"
    out.mkdir(exist_ok=True)
    (out / ".whisper-sae-dashboard.json").write_text("not json")
    build_dashboard(w.sae48, out, progress=False)


def _busy_folder(w: World):
    from whisper_sae.analysis import build_dashboard
    from whisper_sae.runtime.locks import exclusive

    with exclusive(w.root / "busy", "dashboard folder"):
        build_dashboard(w.sae48, w.root / "busy", progress=False)


_PORT: dict = {}


def _busy_port(w: World):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        _PORT["port"] = port = taken.getsockname()[1]
        _cli("dashboard", w.sae48, "--out", w.root / "site-port", "--serve", "--port", port, "--no-progress")


def _port_checked_before_build(w: World):
    assert not (w.root / "site-port" / "index.html").exists()


def _reversed_frames_cli(w: World):
    _cli("intervene", w.sae48, w.wav, "--feature", "3", "--frames", "3:1", "--model", w.model)


def _empty_frames(w: World):
    from whisper_sae.analysis import parse_frames

    parse_frames("1:1")


def _frames_outside(w: World):
    from whisper_sae.analysis import intervene
    from whisper_sae.artifacts import open_sae

    sae, _ = open_sae(w.sae48)
    intervene(sae, w.lw, [u.audio for u in w.utts], 3, frames="5:6", max_new_tokens=4)


def _feature_out_of_range_cli(w: World):
    _cli("intervene", w.sae48, w.wav, "--feature", "48", "--model", w.model)


def _feature_not_a_number(w: World):
    _cli("intervene", w.sae48, w.wav, "--feature", "s", "--model", w.model)


def _sae_of_another_model_intervene(w: World):
    _cli("intervene", w.sae16, w.wav, "--feature", "3", "--model", w.model)


def _analysis_of_another_sae(w: World):
    from whisper_sae.analysis import build_dashboard

    build_dashboard(w.sae24, w.root / "site-24", analysis=w.sae48 / "analysis", progress=False)


def _sae_wider_than_store(w: World):
    from whisper_sae.analysis import analyze

    analyze(w.sae16, store=w.store, progress=False, out=w.root / "an16")


def _sae_of_another_model_analyze(w: World):
    from whisper_sae.analysis import analyze

    analyze(w.sae16, w.utts, model=w.lw, progress=False, out=w.root / "an16")


def _probe_sae_of_another_width(w: World):
    from whisper_sae.analysis import probe

    probe(w.sae16, None, ["gender"], store=w.store, lw=w.lw, out=w.root / "probe16")


def _probe_with_analysis_of_another_sae(w: World):
    from whisper_sae.analysis import probe

    probe(w.sae24, w.utts, ["gender"], analysis=w.sae48 / "analysis", lw=w.lw, out=w.root / "probe24")


def _probe_json(w: World, name: str, text: str) -> Path:
    folder = w.root / name
    folder.mkdir(exist_ok=True)
    (folder / "probe.json").write_text(text)
    return folder


def _probe_json_of_another_width(w: World):
    from whisper_sae.analysis import build_dashboard

    doc = {
        "format": "whisper-sae-probe/1",
        "sae": {"path": None, "hook": "encoder.out", "d_sae": 96},
        "model": None,
        "corpus": "x",
        "store": None,
        "metadata": None,
        "analysis": None,
        "n_utterances": 0,
        "n_frames": 0,
        "n_frames_sampled": 0,
        "n_speakers": 0,
        "notes": [],
        "options": {},
        "attributes": {},
        "ablation": {},
    }
    build_dashboard(w.sae48, w.root / "site-96", probe=_probe_json(w, "probe96", json.dumps(doc)), progress=False)


def _probe_json_not_json(w: World):
    from whisper_sae.analysis import build_dashboard

    build_dashboard(w.sae48, w.root / "site-nj", probe=_probe_json(w, "probe-nj", "{oops"), progress=False)


def _probe_json_of_another_tool(w: World):
    from whisper_sae.analysis import build_dashboard

    build_dashboard(w.sae48, w.root / "site-ot", probe=_probe_json(w, "probe-ot", '{"format": "x"}'), progress=False)


def _probe_json_incomplete(w: World):
    from whisper_sae.analysis import ProbeReport

    ProbeReport.load(_probe_json(w, "probe-inc", '{"format": "whisper-sae-probe/1", "sae": {"hook": "encoder.out"}}'))


def _missing_analysis_folder(w: World):
    from whisper_sae.analysis import load_analysis

    load_analysis(w.root / "nope")


def _dashboard_without_analysis_cli(w: World):
    _cli("dashboard", w.bare, "--out", w.root / "site-bare", "--no-progress")


def _dashboard_of_missing_sae_cli(w: World):
    _cli("dashboard", w.root / "missing", "--out", w.root / "site-missing", "--no-progress")


CASES = [
    # (id, action, error type, message pattern (names the thing), check afterwards)
    (
        "dashboard into a foreign folder",
        _foreign,
        "DashboardFolderError",
        r"dashboard folder \S+foreign is not empty \(features, keep.txt\) and was not written by `whisper-sae dashboard`",
        _foreign_kept,
    ),
    (
        "dashboard CLI into a foreign folder",
        _foreign_cli,
        "DashboardFolderError",
        r"dashboard folder \S+foreign-cli is not empty \(index.html\)",
        None,
    ),
    (
        "dashboard folder with a broken manifest",
        _bad_manifest,
        "DashboardFolderError",
        r"bad-manifest/.whisper-sae-dashboard.json is not a whisper-sae dashboard manifest",
        None,
    ),
    (
        "dashboard folder being written",
        _busy_folder,
        "FolderBusyError",
        r"dashboard folder \S+busy is being written by pid",
        None,
    ),
    (
        "dashboard --serve on a busy port",
        _busy_port,
        "PortBusyError",
        r"cannot serve the dashboard on 127\.0\.0\.1:{port}: .*pass --port with a free port",
        _port_checked_before_build,
    ),
    (
        "intervene --frames 3:1",
        _reversed_frames_cli,
        "ValueError",
        r"frames '3:1' is an empty range: t1 must be after t0 \(seconds\), e.g. '1:3'",
        None,
    ),
    ("frames 1:1", _empty_frames, "ValueError", r"frames '1:1' is an empty range", None),
    (
        "frames after the end of every clip",
        _frames_outside,
        "ValueError",
        r"frames 5:6 s lie outside every clip \(the longest is 1.00 s\)",
        None,
    ),
    (
        "intervene --feature 48 of 48",
        _feature_out_of_range_cli,
        "ValueError",
        r"feature \[48\] is out of range; this SAE has features 0..47",
        None,
    ),
    ("intervene --feature s", _feature_not_a_number, "ValueError", r"--feature 's' must be a feature id", None),
    (
        "intervene with an SAE of another model",
        _sae_of_another_model_intervene,
        "ValueError",
        r"SAE \S+sae16 reads encoder.out of width 16 but Whisper \S+ has d_model 32",
        None,
    ),
    (
        "dashboard of an analysis of another SAE",
        _analysis_of_another_sae,
        "ValueError",
        r"analysis \S+sae48/analysis has 48 features but SAE \S+sae24 has 24",
        None,
    ),
    (
        "analyze a store of another width",
        _sae_wider_than_store,
        "ValueError",
        r"SAE \S+sae16 reads encoder.out of width 16 but store \S+store holds encoder.out 32 wide",
        None,
    ),
    (
        "analyze with a Whisper of another width",
        _sae_of_another_model_analyze,
        "ValueError",
        r"SAE \S+sae16 reads encoder.out of width 16 but Whisper \S+ has d_model 32",
        None,
    ),
    (
        "probe a store of another width",
        _probe_sae_of_another_width,
        "ValueError",
        r"SAE \S+sae16 reads encoder.out of width 16 but store \S+store holds encoder.out 32 wide",
        None,
    ),
    (
        "probe with the analysis of another SAE",
        _probe_with_analysis_of_another_sae,
        "ValueError",
        r"analysis \S+sae48/analysis has 48 features but SAE \S+sae24 has 24",
        None,
    ),
    (
        "probe.json of another width",
        _probe_json_of_another_width,
        "ValueError",
        r"probe96/probe.json was made on an SAE of 96 features; this dashboard's SAE has 48",
        None,
    ),
    ("probe.json that is not JSON", _probe_json_not_json, "ValueError", r"probe-nj/probe.json is not valid JSON", None),
    (
        "probe.json of another tool",
        _probe_json_of_another_tool,
        "ValueError",
        r"probe-ot/probe.json is not a whisper-sae probe.json \(format 'x'\)",
        None,
    ),
    (
        "probe.json cut short",
        _probe_json_incomplete,
        "ValueError",
        r"probe-inc/probe.json is not a complete probe.json \(missing or malformed 'd_sae'\)",
        None,
    ),
    (
        "missing analysis folder",
        _missing_analysis_folder,
        "FileNotFoundError",
        r"analysis folder \S+nope does not exist; run `whisper-sae analyze",
        None,
    ),
    (
        "dashboard of an SAE without analysis",
        _dashboard_without_analysis_cli,
        "FileNotFoundError",
        r"no analysis at \S+bare/analysis; run `whisper-sae analyze",
        None,
    ),
    (
        "dashboard of a missing SAE folder",
        _dashboard_of_missing_sae_cli,
        "UnknownSAEError",
        r"no SAE folder at \S+missing' and no shipped SAE of that name",
        None,
    ),
]


@pytest.mark.parametrize(("action", "error", "pattern", "after"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_error(world, action, error, pattern, after):
    with pytest.raises(Exception) as caught:
        action(world)
    err = caught.value
    assert type(err).__name__ == error, f"{type(err).__name__}: {err}"
    # The CLI prints these as one line (no traceback) because they are ValueError/FileNotFoundError/RuntimeError.
    assert isinstance(err, (ValueError, FileNotFoundError, RuntimeError))
    import re

    assert re.search(pattern.replace("{port}", str(_PORT.get("port", ""))), str(err)), str(err)
    if after is not None:
        after(world)

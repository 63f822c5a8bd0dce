"""lhotse manifests (recordings + supervisions, or cuts), made here with lhotse itself; skipped without lhotse."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf

from whisper_sae.audio import SAMPLE_RATE, load_corpus
from whisper_sae.audio.formats.common import MissingExtraError


def write(path, seconds, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * SAMPLE_RATE)).astype(np.float32)
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")
    return x


@pytest.fixture
def manifests(tmp_path, monkeypatch):
    """Two recordings (paths relative to the manifest folder, as recipes write them), three supervisions."""
    lhotse = pytest.importorskip("lhotse")
    root = tmp_path / "mini"
    a = write(root / "audio" / "rec-a.wav", 2.0, seed=1)
    write(root / "audio" / "rec-b.wav", 1.0, seed=2)
    monkeypatch.chdir(root)  # recipes record paths relative to where they ran
    recs = lhotse.RecordingSet.from_recordings(
        [lhotse.Recording.from_file(f"audio/{n}.wav", recording_id=n) for n in ("rec-a", "rec-b")]
    )
    sups = lhotse.SupervisionSet.from_segments(
        [
            lhotse.SupervisionSegment(
                id="a-1",
                recording_id="rec-a",
                start=0.0,
                duration=0.75,
                text="FIRST PART",
                speaker="spk-a",
                gender="F",
                language="English",
                custom={"age": "31"},
            ),
            lhotse.SupervisionSegment(
                id="a-2",
                recording_id="rec-a",
                start=1.0,
                duration=0.5,
                text="SECOND PART",
                speaker="spk-a",
                gender="F",
                language="English",
            ),
            lhotse.SupervisionSegment(
                id="b-1",
                recording_id="rec-b",
                start=0.0,
                duration=1.0,
                text="WHOLE",
                speaker="spk-b",
                gender="M",
                language="Klingon",
            ),
        ]
    )
    recs.to_file(root / "mini_recordings_dev.jsonl.gz")
    sups.to_file(root / "mini_supervisions_dev.jsonl.gz")
    monkeypatch.chdir(tmp_path)  # read from elsewhere: the relative paths must still resolve
    return root, a


def test_recordings_and_supervisions(manifests):
    root, a = manifests
    corpus = load_corpus(root)  # detected by its manifests
    assert len(corpus) == 3
    utts = {u.id: u for u in corpus}
    assert sorted(utts) == ["a-1", "a-2", "b-1"] and corpus.skipped == []
    assert utts["a-1"].text == "FIRST PART" and utts["a-1"].speaker == "spk-a"
    np.testing.assert_allclose(utts["a-2"].audio, a[16000:24000], atol=1e-6)  # trimmed at the supervision
    assert utts["a-1"].duration == pytest.approx(0.75)
    attrs = utts["a-1"].attributes
    assert attrs["gender"] == "female" and attrs["age"] == 31 and attrs["language"] == "en"
    assert attrs["corpus"] == "mini"
    b = utts["b-1"].attributes
    assert b["gender"] == "male" and "language" not in b and b["locale"] == "Klingon"  # not a Whisper language


def test_cuts_manifest_and_parts(manifests, tmp_path):
    import lhotse

    root, _ = manifests
    cuts = lhotse.CutSet.from_manifests(
        recordings=lhotse.load_manifest(root / "mini_recordings_dev.jsonl.gz"),
        supervisions=lhotse.load_manifest(root / "mini_supervisions_dev.jsonl.gz"),
    )
    cuts.to_file(root / "mini_cuts_dev.jsonl.gz")
    utts = {u.id: u for u in load_corpus(f"lhotse:{root / 'mini_cuts_dev.jsonl.gz'}")}
    assert sorted(utts) == ["a-1", "a-2", "b-1"] and utts["b-1"].text == "WHOLE"
    # A second part makes the folder ambiguous: the error lists the parts, PART chooses one.
    (root / "mini_recordings_test.jsonl.gz").write_bytes((root / "mini_recordings_dev.jsonl.gz").read_bytes())
    with pytest.raises(ValueError, match=r"several recordings manifests \(parts dev, test\)"):
        load_corpus(f"lhotse:{root}")
    assert len(load_corpus(f"lhotse:{root}:dev")) == 3


def test_missing_lhotse_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "x_cuts_a.jsonl.gz").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "lhotse", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install whisper-sae\[lhotse\]"):
        load_corpus(tmp_path / "x_cuts_a.jsonl.gz")

"""The serve API through FastAPI's TestClient and a real uvicorn: results, errors that name the bad
thing, limits, path traversal, escaping, and concurrent requests that must not mix."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

from fastapi.testclient import TestClient  # noqa: E402

from whisper_sae.analysis.interventions import intervene  # noqa: E402
from whisper_sae.serve.app import create_app  # noqa: E402
from whisper_sae.serve.server import ServeOptions, build_session, serving  # noqa: E402

from .conftest import tone, wav_bytes  # noqa: E402

SECRET = "top secret, outside every served folder"


@pytest.fixture(scope="module")
def served(serve_whisper, sae_dirs, tmp_path_factory):
    """(TestClient, Session, dashboard folder) with both SAEs and a dashboard for the encoder SAE."""
    root = tmp_path_factory.mktemp("served")
    dash = root / "dash"
    (dash / "features").mkdir(parents=True)
    (dash / "index.html").write_text("<html>index</html>")
    (dash / "features" / "f3.html").write_text("<html>feature 3</html>")
    (root / "secret.txt").write_text(SECRET)
    options = ServeOptions(saes=list(sae_dirs), dashboards={sae_dirs[0]: str(dash)}, max_bytes=200_000, max_seconds=4.0)
    session = build_session(options, lw=serve_whisper)
    return TestClient(create_app(session)), session, dash


def upload(client, audio, name="clip.wav", **data):
    return client.post("/api/clips", files={"file": (name, wav_bytes(audio), "audio/wav")}, data=data)


@pytest.fixture(scope="module")
def clip(served):
    client, _, _ = served
    response = upload(client, tone(1.5))
    assert response.status_code == 200, response.text
    return response.json()


def test_info_lists_saes_hooks_and_limits(served, sae_dirs):
    client, _, _ = served
    info = client.get("/api/info").json()
    assert [s["name"] for s in info["saes"]] == list(sae_dirs)
    assert [s["hook"] for s in info["saes"]] == ["encoder.out", "decoder.blocks.0"]
    assert info["saes"][0]["dashboard"] == "/dashboard/0/" and info["saes"][1]["dashboard"] is None
    assert info["limits"] == {"max_bytes": 200_000, "max_seconds": 4.0}


def test_page_and_its_assets_are_served(served):
    client, _, _ = served
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200, asset
    assert 'src="/static/app.js"' in page.text


def test_upload_gives_spectrogram_transcript_and_features(served, clip):
    client, session, _ = served
    spec = clip["spectrogram"]
    assert clip["seconds"] == pytest.approx(1.5, abs=1e-3)
    assert spec["frames"] == 150 and spec["n_mels"] == 80 and len(spec["mel_hz"]) == 80
    assert spec["mel_hz"] == sorted(spec["mel_hz"]) and 7000 < spec["mel_hz"][-1] <= 8000
    assert len(base64.b64decode(spec["data"])) == 80 * 150
    assert clip["transcript"] == session.lw.transcribe([tone(1.5)])[0]
    for w in clip["words"]:
        assert 0 <= w["start"] <= w["end"] <= 1.5 + 0.02
    feats = client.get(f"/api/clips/{clip['id']}/features", params={"top": 5}).json()
    assert feats["hook"] == "encoder.out" and feats["frames"] == 75 and len(feats["features"]) == 5
    strip = np.frombuffer(base64.b64decode(feats["strip"]), np.uint8).reshape(5, 75)
    assert (strip.max(1) == 255).all()  # each row scaled to its own peak
    peaks = [f["peak"] for f in feats["features"]]
    assert peaks == sorted(peaks, reverse=True)
    # the dashboard link appears only for a feature that has a page
    pages = {f["id"]: f.get("page") for f in feats["features"]}
    for fid, page in pages.items():
        assert page == ("/dashboard/0/features/f3.html" if fid == 3 else None)
    assert client.get("/dashboard/0/features/f3.html").text == "<html>feature 3</html>"


def test_edit_matches_intervene_and_shows_its_command(served, clip):
    client, session, _ = served
    audio = session.clip(clip["id"]).audio
    sae = session.sae(None).sae
    feats = [f["id"] for f in client.get(f"/api/clips/{clip['id']}/features", params={"top": 6}).json()["features"]]
    for mode, value in (("ablate", None), ("scale", 3.0), ("clamp", 40.0)):
        edit = {"features": feats[:3], "mode": mode, "value": value, "t0": 0.2, "t1": 1.1}
        res = client.post(f"/api/clips/{clip['id']}/edit", json={"edits": [edit]}).json()
        expected = intervene(sae, session.lw, [audio], feats[:3], mode, value, (0.2, 1.1))[0]
        assert (res["clean"], res["edited"]) == (expected.before, expected.after), mode
        assert res["changed"] == (expected.before != expected.after)
        command = res["commands"][0]
        assert f"--feature {','.join(map(str, feats[:3]))} --mode {mode}" in command and "--frames 0.2:1.1" in command
        assert ("--value" in command) == (value is not None)
    # clamping hard changes the transcript, and the diff rebuilds the edited text from its own words
    res = client.post(
        f"/api/clips/{clip['id']}/edit", json={"edits": [{"features": feats[:6], "mode": "clamp", "value": 200.0}]}
    ).json()
    assert res["changed"], "a strong clamp of six features should change the random model's transcript"
    assert " ".join(p["text"] for p in res["diff"] if p["op"] != "del") == " ".join(res["edited"].split())
    assert " ".join(p["text"] for p in res["diff"] if p["op"] != "ins") == " ".join(res["clean"].split())


def test_edits_stack_across_saes_and_reference_ce_changes(served, clip, sae_dirs):
    client, session, _ = served
    url = f"/api/clips/{clip['id']}/edit"
    first = {"features": [1, 2, 3, 4], "mode": "clamp", "value": 150.0}
    second = {"sae": sae_dirs[1], "features": [5], "mode": "scale", "value": 30.0}
    one = client.post(url, json={"edits": [first], "reference": "hello there"}).json()
    both = client.post(url, json={"edits": [first, second], "reference": "hello there"}).json()
    assert len(both["commands"]) == 2 and sae_dirs[1] in both["commands"][1]
    assert "--frames" not in both["commands"][1]  # a decoder edit applies at every position
    assert one["ce_clean"] == both["ce_clean"] and one["ce_edited"] != both["ce_edited"]
    assert one["ce_change"] == pytest.approx(one["ce_edited"] - one["ce_clean"], abs=2e-4)
    none = client.post(url, json={"edits": [], "reference": "hello there"}).json()
    assert none["edited"] == none["clean"] and none["ce_change"] == 0


@pytest.mark.parametrize(
    "edit, status, words",
    [
        ({"features": [48]}, 422, ["feature 48 is out of range", "0..47"]),
        ({"features": []}, 422, ["features must be a non-empty list"]),
        ({"features": [1], "mode": "zero"}, 422, ["mode 'zero'", "ablate, clamp, scale"]),
        ({"features": [1], "mode": "clamp"}, 422, ["needs a value"]),
        ({"features": [1], "t0": 3.0, "t1": 4.0}, 422, ["lie outside every clip"]),
        ({"features": [1], "t0": 1.0, "t1": 0.5}, 422, ["empty range"]),
        ({"features": [1], "t0": "soon"}, 422, ["edit 1:", "soon"]),
        ({"features": [1], "mode": "scale", "value": "big"}, 422, ["edit 1:", "big"]),
        ({"features": ["7"]}, 422, ["features must be a non-empty list of feature ids"]),
        (7, 422, ["edit 1 must be an object"]),
        ({"features": [1], "hook": "encoder.blocks.0"}, 404, ["hook 'encoder.blocks.0'", "encoder.out"]),
        ({"features": [1], "sae": "nope"}, 404, ["SAE 'nope' is not loaded"]),
        ({"sae": "ignored", "features": [1], "hook": "decoder.blocks.0", "t0": 0.1, "t1": 0.5}, 404, ["'ignored'"]),
    ],
)
def test_bad_edits_are_4xx_sentences_naming_the_thing(served, clip, edit, status, words):
    client, _, _ = served
    response = client.post(f"/api/clips/{clip['id']}/edit", json={"edits": [edit]})
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["error"]


def test_bad_requests_are_4xx_and_the_server_keeps_serving(served, sae_dirs):
    client, _, _ = served
    cases = [
        (
            client.post("/api/clips", files={"file": ("notes.wav", b"this is not audio at all", "audio/wav")}),
            422,
            "notes.wav",
        ),
        (upload(client, np.zeros(16000, np.float32), "quiet.wav"), 422, "'quiet.wav' is silent"),
        (upload(client, tone(5.0), "long.wav"), 413, "'long.wav' is 5.0 s long; this server accepts at most 4 s"),
        (client.post("/api/clips", files={"file": ("big.wav", b"\0" * 300_000, "audio/wav")}), 413, "limit"),
        (client.post("/api/clips", files={"file": ("empty.wav", b"", "audio/wav")}), 422, "'empty.wav' is empty"),
        (client.post("/api/clips"), 422, "file"),
        (client.get("/api/clips/deadbeef/features"), 404, "clip 'deadbeef' is not loaded"),
        (client.post("/api/clips/corpus", json={"id": "x"}), 404, "--corpus"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, (words, response.text)
        assert words in response.json()["error"], response.json()
    ok = upload(client, tone(1.0, 220.0))
    assert ok.status_code == 200
    decoder = client.get(f"/api/clips/{ok.json()['id']}/features", params={"sae": sae_dirs[1]})
    assert decoder.status_code == 422 and "decoder hook 'decoder.blocks.0'" in decoder.json()["error"]
    too_many = client.get(f"/api/clips/{ok.json()['id']}/features", params={"top": 1000})
    assert too_many.status_code == 422 and "top 1000 must be 1..64" in too_many.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/../session.py",
        "/static/%2e%2e/session.py",
        "/static/..%2fsession.py",
        "/static/%2e%2e/%2e%2e/serve/session.py",
        "/dashboard/0/../secret.txt",
        "/dashboard/0/%2e%2e/secret.txt",
        "/dashboard/0/..%2fsecret.txt",
        "/dashboard/0/%2e%2e%2fsecret.txt",
        "/dashboard/0//etc/passwd",
        "/dashboard/1/index.html",
        "/api/clips/..%2f..%2fsecret.txt/audio",
    ],
)
def test_no_file_outside_the_served_folders_is_reachable(served, path):
    client, _, _ = served
    response = client.get(path)
    assert response.status_code in (400, 404), (path, response.status_code)
    assert SECRET not in response.text and "class RequestError" not in response.text and "root:" not in response.text


def test_user_text_is_data_not_html(served):
    client, _, _ = served
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>.wav"
    response = upload(client, tone(1.0, 300.0), evil, reference="<b>bold</b>")
    assert response.status_code == 200 and response.json()["name"] == evil
    assert response.headers["content-type"] == "application/json"
    assert response.json()["reference"] == "<b>bold</b>"
    # The page writes every server or user string with textContent, never as markup.
    script = client.get("/static/app.js").text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_concurrent_requests_do_not_mix(served, sae_dirs, serve_whisper):
    """Edits patch the model while they run; requests from many threads against a real uvicorn must each
    get the transcript they would get alone."""
    import httpx

    _, session, _ = served
    clips = [session.add_clip(tone(1.0 + 0.3 * i, 150.0 + 60 * i, seed=i), f"c{i}.wav") for i in range(3)]
    jobs = []
    for c in clips:
        for feats, value in (([1, 2, 3], 200.0), ([7, 8], -100.0), ([], None)):
            edits = [{"features": feats, "mode": "clamp", "value": value}] if feats else []
            jobs.append((c.id, edits))
    alone = [session.edit(session.clip(cid), edits)["edited"] for cid, edits in jobs]
    assert len(set(alone)) > 3, "the jobs should give different transcripts, or mixing could not be seen"
    with serving(session) as base:
        barrier = threading.Barrier(len(jobs))

        def run(job):
            cid, edits = job
            with httpx.Client(base_url=base, timeout=120) as http:
                barrier.wait()
                r = http.post(f"/api/clips/{cid}/edit", json={"edits": edits})
                r.raise_for_status()
                return r.json()["edited"]

        with ThreadPoolExecutor(len(jobs)) as pool:
            together = list(pool.map(run, jobs * 2))
    assert together == alone * 2


def test_serve_cli_checks_flags_and_names_a_missing_install(monkeypatch, capsys):
    import importlib.util

    from whisper_sae.cli import main
    from whisper_sae.cli.serve import _dashboards

    assert main(["serve", "x", "--max-seconds", "45"]) == 1
    assert "--max-seconds 45 must be in (0, 30]" in capsys.readouterr().err
    assert _dashboards(["d"], ["a"]) == {"a": "d"} and _dashboards(["b=e"], ["a", "b"]) == {"b": "e"}
    with pytest.raises(ValueError, match="write SAE=DIR"):
        _dashboards(["d"], ["a", "b"])
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve", "x"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'whisper-sae[serve]'" in err and "missing: uvicorn" in err


def test_unknown_dashboard_sae_and_missing_index_are_refused(serve_whisper, sae_dirs, tmp_path):
    with pytest.raises(ValueError, match="names SAE 'other'"):
        build_session(ServeOptions(saes=[sae_dirs[0]], dashboards={"other": str(tmp_path)}), lw=serve_whisper)
    with pytest.raises(FileNotFoundError, match="holds no index.html"):
        build_session(ServeOptions(saes=[sae_dirs[0]], dashboards={sae_dirs[0]: str(tmp_path)}), lw=serve_whisper)


def test_corpus_clips_by_id(serve_whisper, sae_dirs, tmp_path):
    import soundfile as sf

    folder = tmp_path / "corpus"
    folder.mkdir()
    sf.write(folder / "one.wav", tone(1.2), 16000)
    (folder / "one.txt").write_text("hello there")
    session = build_session(ServeOptions(saes=[sae_dirs[0]], corpus=str(folder)), lw=serve_whisper)
    client = TestClient(create_app(session))
    ids = client.get("/api/corpus").json()["utterances"]
    assert len(ids) == 1
    view = client.post("/api/clips/corpus", json={"id": ids[0]["id"]}).json()
    assert view["seconds"] == pytest.approx(1.2, abs=1e-3)
    missing = client.post("/api/clips/corpus", json={"id": "../../etc/passwd"})
    assert missing.status_code == 404 and "'../../etc/passwd' is not in the corpus" in missing.json()["error"]
    assert Path(folder / "one.wav").is_file()


def test_clip_audio_answers_byte_ranges(served, clip):
    client, _, _ = served
    whole = client.get(f"/api/clips/{clip['id']}/audio")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    info = sf_info(whole.content)
    assert info == (16000, 24000)
    part = client.get(f"/api/clips/{clip['id']}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    tail = client.get(f"/api/clips/{clip['id']}/audio", headers={"Range": "bytes=-10"})
    assert tail.content == whole.content[-10:]
    assert client.get(f"/api/clips/{clip['id']}/audio", headers={"Range": "bytes=999999999-"}).status_code == 416


def sf_info(data: bytes) -> tuple[int, int]:
    import io

    import soundfile as sf

    info = sf.info(io.BytesIO(data))
    return info.samplerate, info.frames

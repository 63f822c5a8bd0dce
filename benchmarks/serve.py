"""How fast the interactive app answers: time from upload to features, and from an edit to the new transcript,
for a ~10-s clip through the real server (uvicorn on loopback, HTTP from this process), tiny.en on CPU.

    python benchmarks/serve.py [--audio FILE] [--sae tiny/encoder.out-original] [--model tiny.en] [--repeats 5]

Without --audio, the clip is eSpeak NG speech of about 10 s (offline). Prints the median and the range of
--repeats runs of each step, with the machine (CPU, torch threads, load average) it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

TEXT = (
    "The quick brown fox jumps over the lazy dog near the river bank, "
    "while seven small birds sing in the old oak tree behind the farmhouse every morning."
)


def speech_clip(folder: Path) -> Path:
    from whisper_sae.audio import resample
    from whisper_sae.audio.synth.espeak import engine

    tts = engine()
    audio, _ = tts.synthesize(TEXT, "en-us", rate=150)
    audio = resample(audio.astype(np.float32) / 32768, tts.sample_rate)
    path = folder / "speech.wav"
    sf.write(path, audio, 16000, subtype="PCM_16")
    return path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audio", default=None, help="clip to upload (default: ~10 s of eSpeak speech)")
    parser.add_argument("--sae", default="tiny/encoder.out-original", help="SAE folder or shipped name")
    parser.add_argument("--model", default="tiny.en", help="Whisper model spec")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each step (median reported)")
    args = parser.parse_args()

    import httpx
    import torch

    from whisper_sae.serve.server import ServeOptions, build_session, serving

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    audio_path = Path(args.audio) if args.audio else speech_clip(tmp)
    seconds = sf.info(str(audio_path)).duration
    t_load, session = timed(lambda: build_session(ServeOptions(saes=[args.sae], model=args.model)))
    rows: dict[str, list[float]] = {}
    with serving(session) as base, httpx.Client(base_url=base, timeout=600) as http:
        data = audio_path.read_bytes()

        def upload():
            r = http.post("/api/clips", files={"file": (audio_path.name, data, "audio/wav")})
            r.raise_for_status()
            return r.json()

        def features(clip_id):
            r = http.get(f"/api/clips/{clip_id}/features", params={"top": 16})
            r.raise_for_status()
            return r.json()

        def edit(clip_id, edits, reference=None):
            r = http.post(f"/api/clips/{clip_id}/edit", json={"edits": edits, "reference": reference})
            r.raise_for_status()
            return r.json()

        upload()  # warm-up (first calls allocate)
        for _ in range(args.repeats):
            t_up, view = timed(upload)
            t_feat, feats = timed(lambda v=view: features(v["id"]))
            top = feats["features"][0]
            t0, t1 = max(0.0, top["peak_time"] - 0.5), top["peak_time"] + 0.5
            one = [{"features": [top["id"]], "mode": "ablate", "t0": t0, "t1": t1}]
            t_edit, _ = timed(lambda v=view, e=one: edit(v["id"], e))
            two = one + [{"features": [feats["features"][1]["id"]], "mode": "scale", "value": 3.0}]
            t_stack, _ = timed(lambda v=view, e=two: edit(v["id"], e))
            t_ref, res = timed(lambda v=view, e=one: edit(v["id"], e, reference=TEXT))
            from whisper_sae.audio import load_audio

            audio = load_audio(audio_path)
            t_plain, _ = timed(lambda a=audio: session.lw.transcribe([a]))  # baseline: Whisper alone, no server
            for name, value in (
                ("baseline: plain lw.transcribe of the clip (no server, no edit)", t_plain),
                ("upload -> clip view (transcript, word times, spectrogram)", t_up),
                ("clip view -> features (top 16 over time)", t_feat),
                ("upload -> features (sum of the two)", t_up + t_feat),
                ("edit: ablate 1 feature over 1 s -> new transcript", t_edit),
                ("edit: stack of 2 edits -> new transcript", t_stack),
                ("edit + reference CE (clean CE cached after the first)", t_ref),
            ):
                rows.setdefault(name, []).append(value)
    load = os.getloadavg()
    print(
        f"whisper-sae serve benchmark: {audio_path.name}, {seconds:.2f} s of audio, model {args.model}, SAE {args.sae}"
    )
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (at the end)"
    )
    print(f"server start (model + SAE load): {t_load:.2f} s")
    print(f"{'step':<62} {'median s':>9} {'min s':>7} {'max s':>7}   ({args.repeats} runs)")
    for name, values in rows.items():
        print(f"{name:<62} {statistics.median(values):>9.3f} {min(values):>7.3f} {max(values):>7.3f}")
    print(f"last edit with reference: CE {res['ce_clean']:.3f} -> {res['ce_edited']:.3f} nats/token")


if __name__ == "__main__":
    main()

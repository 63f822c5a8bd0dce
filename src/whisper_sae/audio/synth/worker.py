"""One speaker's texts spoken in a fresh process: ``python -m whisper_sae.audio.synth.worker``.

eSpeak NG's output depends a little on what the same process synthesized before, so every speaker
gets a new interpreter: the corpus is then the same whatever the order or number of workers. A
plain subprocess (job pickled on stdin, result on stdout) rather than multiprocessing, so that a
caller's script is never re-imported and needs no ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from whisper_sae.audio.synth.espeak import Event, engine
from whisper_sae.audio.synth.voices import Speaker


def speak(speaker: Speaker, utterances: list[dict]) -> tuple[str, int, list[tuple[np.ndarray, list[Event]]]]:
    """Speak each text with one speaker → (eSpeak version, sample rate, [(int16 samples, events)])."""
    tts = engine()
    spoken = []
    for utt in utterances:
        samples, events = tts.synthesize(
            utt["text"], speaker.espeak_name, rate=speaker.rate, pitch=speaker.pitch, rand_seed=utt["rand_seed"]
        )
        if samples.size == 0:
            raise RuntimeError(f"eSpeak produced no audio for {utt['id']} ({utt['text'][:40]!r}).")
        spoken.append((samples, events))
    return tts.version, tts.sample_rate, spoken


def speak_in_fresh_process(speaker: Speaker, utterances: list[dict]):
    """Run ``speak`` in a new interpreter and return its result."""
    import whisper_sae

    env = dict(os.environ)
    src = str(Path(whisper_sae.__file__).resolve().parents[1])  # importable even from a bare checkout
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run(
        [sys.executable, "-m", __name__.replace("__main__", "whisper_sae.audio.synth.worker")],
        input=pickle.dumps((speaker, utterances)),
        capture_output=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace")[-1500:]
        raise RuntimeError(f"the eSpeak worker for speaker {speaker.id} ({speaker.espeak_name}) failed:\n{tail}")
    return pickle.loads(proc.stdout)


def main() -> None:
    speaker, utterances = pickle.load(sys.stdin.buffer)
    result = speak(speaker, utterances)
    sys.stdout.buffer.write(pickle.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

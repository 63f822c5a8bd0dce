"""Whisper models (any checkpoint form, as ``transformers`` modules) and named hook points on them."""

from whisper_sae.whisper.hooks import (
    HookPoint,
    UnknownHookError,
    capture,
    encode_clips,
    frames_for_duration,
    patch,
    run_decoder_teacher_forced,
    run_encoder,
    valid_hook_names,
)
from whisper_sae.whisper.loading import LoadedWhisper, default_spec, load_whisper

__all__ = [
    "HookPoint",
    "LoadedWhisper",
    "UnknownHookError",
    "capture",
    "default_spec",
    "encode_clips",
    "frames_for_duration",
    "load_whisper",
    "patch",
    "run_decoder_teacher_forced",
    "run_encoder",
    "valid_hook_names",
]

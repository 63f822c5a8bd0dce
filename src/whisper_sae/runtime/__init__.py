"""Where and how computation runs: device and precision choice, batch prefetching, the
``torch.distributed`` world (ranks under ``torchrun``), and the C heap kept for training steps
(``allocator.py``). Imports nothing else from the package except
``whisper_sae.audio.constants`` (Whisper's audio geometry: plain numbers, itself importing nothing), so
every stage may use it."""

from .device import Prefetcher, autocast, cpu_has_fast_bf16, grad_scaler, prefetch, resolve_autocast, resolve_device
from .distributed import (
    DISTRIBUTE_MODES,
    DataParallel,
    TrainingPlan,
    World,
    barrier,
    current_world,
    data_parallel,
    init_distributed,
    plan_training,
    rank_slice,
    shard_items,
)

__all__ = [
    "DISTRIBUTE_MODES",
    "TrainingPlan",
    "plan_training",
    "DataParallel",
    "Prefetcher",
    "World",
    "autocast",
    "barrier",
    "current_world",
    "data_parallel",
    "cpu_has_fast_bf16",
    "grad_scaler",
    "init_distributed",
    "prefetch",
    "rank_slice",
    "resolve_autocast",
    "resolve_device",
    "shard_items",
]

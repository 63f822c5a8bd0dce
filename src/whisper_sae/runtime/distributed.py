"""The ``torch.distributed`` world as the stages see it: which rank this process is, how many there
are, and the few collectives data-parallel training needs.

Under ``torchrun --nproc-per-node N`` the environment names the rank and world size;
``init_distributed`` joins the process group (``nccl`` on CUDA, ``gloo`` on CPU) once, and every stage
asks ``current_world()``. Outside torchrun the world is one process and every helper here is a no-op,
so the same code runs either way.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

# Extraction ranks wait for each other at the end; a rank with more (or longer) utterances may
# finish well after the others, so the collectives get a generous default timeout.
DEFAULT_TIMEOUT_MIN = float(os.environ.get("WHISPER_SAE_DIST_TIMEOUT_MIN", 180))


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run."""

    rank: int = 0
    """0 .. size-1; rank 0 writes shared files (manifests, checkpoints, logs)."""
    size: int = 1
    """Number of processes (``WORLD_SIZE``)."""
    local_rank: int = 0
    """Rank on this machine; picks the GPU."""
    backend: str | None = None
    """``gloo`` or ``nccl`` when a process group is up, else None."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current_world() -> World:
    """The world of the process group this process joined, or a world of one."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_backend())
    return World()


def init_distributed(device: str | torch.device | None = "auto", *, timeout_min: float = DEFAULT_TIMEOUT_MIN) -> World:
    """Join the process group that ``torchrun`` set up in the environment (idempotent).

    Does nothing when ``WORLD_SIZE`` is unset or 1, or a group is already up. The backend is
    ``nccl`` when this process computes on CUDA and ``gloo`` otherwise; on CUDA the process's GPU is
    its ``LOCAL_RANK``.
    """
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size <= 1 or not dist.is_available() or dist.is_initialized():
        return current_world()
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise RuntimeError(
                f"WORLD_SIZE={size} is set but {key} is not; launch with torchrun "
                "(e.g. torchrun --nproc-per-node 2 -m whisper_sae.cli ...)"
            )
    local = int(os.environ.get("LOCAL_RANK", 0))
    cuda = torch.cuda.is_available() and (
        device is None or str(device) in ("auto", "cuda") or str(device).startswith("cuda")
    )
    if cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=timeout_min))
    return current_world()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shard_items(items, world: World | None = None) -> list:
    """This rank's share of ``items``: every ``size``-th one starting at ``rank`` (disjoint, covering)."""
    world = world or current_world()
    return list(items)[world.rank :: world.size]


def _slice(batch, world: World):
    if isinstance(batch, dict):
        return {k: _slice(v, world) for k, v in batch.items()}
    n = batch.shape[0]
    if n % world.size:
        raise ValueError(
            f"a batch of {n} rows does not split evenly over {world.size} ranks; "
            f"use a batch size that is a multiple of {world.size}"
        )
    part = n // world.size
    return batch[world.rank * part : (world.rank + 1) * part]


def rank_slice(batches: Iterable, world: World | None = None) -> Iterator:
    """From a stream of global batches (every rank reads the same stream, same seed), yield this rank's
    contiguous slice of each: rank r of N gets rows [r*B/N, (r+1)*B/N). The ranks' slices are disjoint
    and together are exactly the batch one process would have trained on."""
    world = world or current_world()
    for batch in batches:
        yield batch if world.size == 1 else _slice(batch, world)


class DataParallel:
    """The collectives of data-parallel SAE training; with one process every method is a no-op.

    Each rank computes its loss as a mean over its own rows; averaging the gradients over ranks then
    gives exactly the gradient of the mean over the global batch, so N ranks with B/N rows each take
    the same optimizer step as one process with B rows (up to summation order). The SAE objectives
    call the model's parts directly (``pre_acts``, ``W_dec``) rather than ``forward``, so gradients are
    all-reduced explicitly after ``backward`` instead of through ``DistributedDataParallel``'s hooks.
    """

    def __init__(self, world: World | None = None):
        self.world = world or current_world()

    @property
    def size(self) -> int:
        return self.world.size

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    def global_rows(self, local_rows: int) -> int:
        """Rows in the global batch when every rank holds ``local_rows``."""
        return local_rows * self.size

    def reduce_gradients(self, module: torch.nn.Module) -> None:
        """Average every parameter's gradient over ranks, in one flat all-reduce."""
        if self.size == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat.div_(self.size)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over ranks (a new tensor; e.g. per-feature fire counts)."""
        if self.size == 1:
            return tensor
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    def gather_rows(self, x: torch.Tensor) -> torch.Tensor:
        """All ranks' rows ``x`` [n_r, ...] concatenated in rank order (the global batch), on every rank."""
        if self.size == 1:
            return x
        sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(self.size)]
        dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros((longest, *x.shape[1:]), dtype=x.dtype, device=x.device)
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])

    def average_buffers(self, module: torch.nn.Module) -> None:
        """Average floating-point buffers (e.g. a running inference threshold) so ranks stay identical."""
        if self.size == 1:
            return
        for buf in module.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf.div_(self.size)


def data_parallel() -> DataParallel:
    return DataParallel(current_world())


DISTRIBUTE_MODES = ("data", "saes")


@dataclass
class TrainingPlan:
    """What one rank does in a multi-process training run."""

    specs: list
    """The SAEs this rank trains."""
    parallel: DataParallel
    """Collectives: the whole world for ``data``, a world of one for ``saes``."""
    split_batches: bool
    """Whether this rank trains on its slice of each global batch (``data``) or on whole batches."""
    checkpoint: Path
    """Checkpoint file, relative to the output folder; one per rank for ``saes``."""


def plan_training(
    specs: list,
    world: World | None = None,
    distribute: str = "data",
    checkpoint: Path = Path("checkpoint") / "state.json",
) -> TrainingPlan:
    """Split training over ranks.

    ``data``: every rank trains every SAE on its slice of each batch and the gradients are averaged
    (data parallel; the result matches one process with the same global batch size).
    ``saes``: each rank trains its own SAEs (every ``size``-th, e.g. one hook each) on whole batches,
    with no communication; suited to many SAEs (hooks, sweeps) that each fit on one device.
    """
    world = world or current_world()
    if distribute not in DISTRIBUTE_MODES:
        raise ValueError(f"distribute {distribute!r} is not one of {', '.join(DISTRIBUTE_MODES)}")
    if world.size == 1 or distribute == "data":
        return TrainingPlan(list(specs), DataParallel(world), world.size > 1, Path(checkpoint))
    mine = shard_items(specs, world)
    return TrainingPlan(
        mine,
        DataParallel(World()),
        False,
        Path(checkpoint).parent / f"rank{world.rank:05d}-of-{world.size:05d}" / Path(checkpoint).name,
    )

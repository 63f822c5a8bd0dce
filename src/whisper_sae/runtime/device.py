"""Device and precision in one place: ``--device auto|cpu|cuda[:N]``, ``--autocast auto|bf16|fp16|none``,
the grad scaler fp16 training needs, and a background prefetcher that keeps the next batches ready
(pinned, already copied) while the GPU works on the current one."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterable, Iterator

import torch

AUTOCAST_NAMES = ("auto", "bf16", "fp16", "none")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None): the GPU of this process's local rank when CUDA is present, else the CPU."""
    if isinstance(name, torch.device):
        name = str(name)
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def resolve_autocast(name: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``name`` on ``device``; None means full fp32.

    ``auto`` is bf16 where the hardware has it (CUDA with bf16, a CPU with AVX-512) and fp32 otherwise;
    ``fp16`` is CUDA only (CPU fp16 matmuls are slow and poorly supported).
    """
    name = "none" if name is None else str(name).replace("bfloat16", "bf16").replace("float16", "fp16")
    if name not in AUTOCAST_NAMES:
        raise ValueError(f"autocast {name!r} is not one of {', '.join(AUTOCAST_NAMES)}")
    if name == "none":
        return None
    if name == "fp16":
        if device.type != "cuda":
            raise ValueError("fp16 autocast is for CUDA; on CPU use bf16 or none")
        return torch.float16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        if name == "auto":
            return None
        raise ValueError(
            f"bf16 autocast was asked for but {torch.cuda.get_device_name(device)} lacks bf16; use fp16 or none"
        )
    if name == "auto" and device.type == "cpu" and not cpu_has_fast_bf16():
        # Measured on an AVX2-only EPYC: a bf16 autocast matmul ran ~40x slower than fp32.
        return None
    return torch.bfloat16


def cpu_has_fast_bf16() -> bool:
    """True where torch's CPU kernels have native bf16 (AVX-512 and up); elsewhere bf16 falls back to slow code."""
    return "AVX512" in torch.backends.cpu.get_cpu_capability()


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype`` on ``device``, or a context that changes nothing when None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 on CUDA (bf16 has fp32's range and needs none).

    Disabled, ``scale(loss)`` returns the loss and ``step(opt)`` just steps, so one training loop
    serves every precision.
    """
    enabled = dtype == torch.float16 and device.type == "cuda"
    return torch.amp.GradScaler(device.type if enabled else "cpu", enabled=enabled)


def _to_device(batch, device: torch.device, pin: bool):
    if isinstance(batch, torch.Tensor):
        if pin:
            batch = batch.pin_memory()
        return batch.to(device, non_blocking=pin)
    if isinstance(batch, dict):
        return {k: _to_device(v, device, pin) for k, v in batch.items()}
    return batch


def _record_stream(batch, stream) -> None:
    # The batch was allocated on the copy stream; tell the allocator the compute stream uses it too,
    # so its memory is not handed to the next copy while a kernel still reads it.
    if isinstance(batch, torch.Tensor):
        batch.record_stream(stream)
    elif isinstance(batch, dict):
        for value in batch.values():
            _record_stream(value, stream)


_DONE = object()


class Prefetcher:
    """Iterate ``batches`` from a background thread, ``depth`` batches ahead.

    Reading a store batch (safetensors load, shuffle, dtype cast) happens off the training thread;
    on CUDA each batch is also pinned and copied to the device asynchronously, so the training
    step finds it already there. The thread stops when the consumer is garbage-collected or
    ``close`` is called; an error in the reader is raised in the consumer.
    """

    def __init__(self, batches: Iterable, device: torch.device | str = "cpu", depth: int = 2):
        self.device = torch.device(device)
        self.pin = self.device.type == "cuda"
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._source = iter(batches)
        self._thread = threading.Thread(target=self._fill, name="batch-prefetch", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        stream = torch.cuda.Stream(self.device) if self.pin else None
        try:
            for batch in self._source:
                if stream is not None:
                    with torch.cuda.stream(stream):
                        batch = _to_device(batch, self.device, True)
                    stream.synchronize()  # the copy is done before the consumer sees the batch
                if not self._put(batch):
                    return
            self._put(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(error)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        item = self._queue.get()
        if item is _DONE:
            self._queue.put(_DONE)  # later calls keep raising StopIteration
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        if self.pin:
            _record_stream(item, torch.cuda.current_stream(self.device))
        return item

    def close(self) -> None:
        self._stop.set()

    def __del__(self):
        self._stop.set()


def prefetch(batches: Iterable, device: torch.device | str, *, depth: int = 2, enabled: bool | None = None):
    """``Prefetcher(batches, device)`` on CUDA (or when ``enabled``), else ``batches`` unchanged:
    on a 2-core CPU a reader thread competes with the matmuls for the same cores."""
    device = torch.device(device)
    if enabled is None:
        enabled = device.type == "cuda"
    return Prefetcher(batches, device, depth) if enabled else batches

"""Device, precision and prefetching helpers (CPU side; the CUDA paths run in benchmarks/gpu.py)."""

from __future__ import annotations

import pytest
import torch

from whisper_sae.runtime import Prefetcher, cpu_has_fast_bf16, grad_scaler, prefetch, resolve_autocast, resolve_device

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a CPU-only machine")


@needs_no_cuda
def test_device_resolution_on_a_cpu_machine():
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")


def test_autocast_names():
    cpu = torch.device("cpu")
    assert resolve_autocast("bf16", cpu) == torch.bfloat16
    # auto takes bf16 on the CPU only where its kernels are native (AVX-512); elsewhere they are far slower.
    assert resolve_autocast("auto", cpu) == (torch.bfloat16 if cpu_has_fast_bf16() else None)
    assert resolve_autocast("none", cpu) is None and resolve_autocast(None, cpu) is None
    with pytest.raises(ValueError, match="fp16 autocast is for CUDA"):
        resolve_autocast("fp16", cpu)
    with pytest.raises(ValueError, match="not one of"):
        resolve_autocast("int8", cpu)
    assert not grad_scaler(cpu, torch.bfloat16).is_enabled()


def test_prefetcher_keeps_order_and_raises_reader_errors():
    batches = [torch.full((2, 3), float(i)) for i in range(7)]
    assert [float(b[0, 0]) for b in Prefetcher(iter(batches), "cpu", depth=2)] == list(range(7))

    def broken():
        yield torch.zeros(1)
        raise OSError("shard unreadable")

    it = Prefetcher(broken(), "cpu")
    next(it)
    with pytest.raises(OSError, match="shard unreadable"):
        next(it)
    plain = iter(batches)
    assert prefetch(plain, "cpu") is plain  # no reader thread on the CPU unless asked

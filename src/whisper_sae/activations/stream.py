"""Shuffled training batches streamed from a store's shards through one fixed-size buffer.

``ActivationStore.batches`` returns a :class:`ShuffledBatches`. Each epoch visits the shards in a random
order, a group of ``buffer_rows // shard_rows`` shards at a time: the group's rows (plus those left over
from the previous group) are copied into one buffer allocated once, a permutation of them is drawn, and
each batch is gathered from the buffer by its slice of the permutation. So the memory held is one buffer
of about ``buffer_rows`` rows (plus the rows of the shard being read and one batch) whatever the store's
size, and no permuted copy of the buffer is ever made. The rows come out in the order the earlier
concatenate-and-permute reader gave for the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch


class ShuffledBatches:
    """Iterator of ``[batch_size, d]`` batches over ``shards`` (each ``load(i)`` gives shard i's rows);
    every row once per epoch. ``capacity`` is the buffer's size in rows; ``peak_rows`` the most rows held
    at once so far (the buffer plus the shard being copied in)."""

    def __init__(
        self,
        load: Callable[[int], torch.Tensor],
        shard_rows: list[int],
        d: int,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        dtype: torch.dtype,
        store_dtype: torch.dtype,
        loop: bool,
        drop_last: bool,
        per_buffer: int,
    ):
        self._load, self._shard_rows = load, list(shard_rows)
        self.batch_size, self.shuffle, self.dtype, self.loop, self.drop_last = (
            batch_size,
            shuffle,
            dtype,
            loop,
            drop_last,
        )
        self.per_buffer = per_buffer
        self._gen = torch.Generator().manual_seed(seed)
        # Enough for the largest group of shards plus what a group can leave over (< one batch).
        largest = sorted(self._shard_rows, reverse=True)[:per_buffer]
        self.capacity = sum(largest) + batch_size - 1
        self._buffer = torch.empty(self.capacity, d, dtype=store_dtype)
        self.peak_rows = 0
        self._it = self._batches()

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        return next(self._it)

    def _fill(self, filled: int, shard: int) -> int:
        rows = self._load(shard)
        need = filled + len(rows)
        if need > len(self._buffer):  # a shard larger than its manifest entry said; grow rather than fail
            grown = torch.empty(need, self._buffer.shape[1], dtype=self._buffer.dtype)
            grown[:filled] = self._buffer[:filled]
            self._buffer = grown
        self.peak_rows = max(self.peak_rows, len(self._buffer) + len(rows))
        self._buffer[filled:need] = rows
        return need

    def _batches(self) -> Iterator[torch.Tensor]:
        n_shards, batch = len(self._shard_rows), self.batch_size
        filled = 0  # rows at the start of the buffer: the group's, after those carried over
        while True:
            order = torch.randperm(n_shards, generator=self._gen).tolist() if self.shuffle else range(n_shards)
            order = list(order)
            for start in range(0, len(order), self.per_buffer):
                for shard in order[start : start + self.per_buffer]:
                    filled = self._fill(filled, shard)
                buf = self._buffer
                n_full = filled // batch * batch
                if self.shuffle:
                    perm = torch.randperm(filled, generator=self._gen)
                    for b in range(0, n_full, batch):
                        yield buf.index_select(0, perm[b : b + batch]).to(self.dtype)
                    buf[: filled - n_full] = buf.index_select(0, perm[n_full:filled])
                else:
                    for b in range(0, n_full, batch):
                        yield buf[b : b + batch].to(self.dtype, copy=True)  # a copy: the buffer is reused
                    buf[: filled - n_full] = buf[n_full:filled].clone()
                filled -= n_full
            if not self.loop:
                if filled and not self.drop_last:
                    yield self._buffer[:filled].to(self.dtype, copy=True)
                return

"""Handing batches from DataLoader workers to the training process in reused shared memory.

A batch a worker sends must sit in shared memory. Fresh shared memory costs a page fault for every
4 KiB page on first touch, and on small virtual machines that costs more than reading the windows
themselves (bench/README.md: 180 vs 35 us per window for the transfer alone). So each worker keeps a
few shared buffers and reuses one once the training process has dropped every tensor of the batch it
carried. The training process notices that with a weak reference to the batch's storage, checked as
each new batch arrives, and clears the buffer's flag in a small shared control array.

Reuse never depends on how the training loop treats its batches: a batch it keeps (in a list, say)
keeps its flag set and its buffer out of reuse, and a worker without a free buffer allocates a fresh
one. The one thing a loop must not do is send a batch's tensors on to another process without copying
them, because this process would then drop them while the other still reads them.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.multiprocessing.reductions import StorageWeakRef

_SLOTS = 8  # buffers per worker: enough for the DataLoader's prefetched batches and the one in use


class _WorkerBuffers:
    """This worker's reusable shared storages and their flags (1: the training process may hold it)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.control = torch.zeros(_SLOTS, dtype=torch.uint8).share_memory_()
        self.flags = self.control.numpy()
        self.storages: list[torch.UntypedStorage | None] = [None] * _SLOTS


_buffers: _WorkerBuffers | None = None
_held: list[tuple[StorageWeakRef, torch.Tensor, int]] = []  # training process: pooled batches still alive


def shared_storage(nbytes: int) -> tuple[torch.UntypedStorage, int]:
    """A shared-memory storage of at least `nbytes` for a batch, and its slot (-1: a fresh one, not pooled).

    The slot stays taken until the training process has received the batch as a `SharedBatch` and
    dropped it; a batch that never travels that way simply keeps its slot.
    """
    global _buffers
    if _buffers is None or _buffers.pid != os.getpid():
        _buffers = _WorkerBuffers()
    for slot in np.flatnonzero(_buffers.flags == 0).tolist():
        storage = _buffers.storages[slot]
        if storage is None or storage.nbytes() < nbytes:
            storage = _buffers.storages[slot] = torch.UntypedStorage._new_shared(nbytes)
        _buffers.flags[slot] = 1
        return storage, slot
    return torch.UntypedStorage._new_shared(nbytes), -1


class SharedBatch(dict):
    """A batch (a dict) built in a worker on a pooled storage; unpickles in the training process as a
    plain dict, registering the storage so that its buffer is freed for reuse once it is dropped."""

    def __init__(self, data: dict[str, Any], slot: int):
        super().__init__(data)
        self.slot = slot

    def __reduce__(self) -> tuple[Any, ...]:
        return _arrived, (dict(self), _buffers.control, self.slot)  # a slot >= 0 comes from _buffers


def _arrived(data: dict[str, Any], control: torch.Tensor, slot: int) -> dict[str, Any]:
    """Runs in the training process when a batch is unpickled: frees the buffers of dropped batches."""
    global _held
    alive = []
    for ref, flags, held_slot in _held:
        if ref.expired():
            flags[held_slot] = 0
        else:
            alive.append((ref, flags, held_slot))
    _held = alive
    if slot >= 0:
        tensor = next(v for v in data.values() if isinstance(v, torch.Tensor))
        _held.append((StorageWeakRef(tensor.untyped_storage()), control, slot))
    return data

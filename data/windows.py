"""WindowDataset: one training item per (episode, step), as torch tensors, for a DataLoader.

Items are numbered episode by episode: the items of the i-th selected episode are its steps 0..T-1.
Only cumulative episode lengths are kept, so the index costs O(episodes), not O(steps).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from polyact.data.reader import EpisodeDataset
from polyact.data.transport import SharedBatch, shared_storage
from polyact.errors import ConfigError


class WindowDataset(torch.utils.data.Dataset):
    """Windows of `history` observations and `chunk` actions (EpisodeDataset.window's contract), as tensors,
    and with `future` > 0 the `future_keys` observations that many steps ahead (EpisodeDataset.windows).

    Images stay uint8 channels-last (h, H, W, 3); "instruction" stays a str. Batches come from
    `__getitems__` already stacked: give the DataLoader `collate_fn=collate_windows` to use them as they
    are (the default collate also works, with one more copy). Safe with multi-worker DataLoaders: each
    worker opens its own files lazily.
    The episode selection is fixed at construction; after `dataset.refresh()` build a new WindowDataset
    to include new episodes.
    """

    def __init__(
        self,
        path_or_dataset: str | os.PathLike | EpisodeDataset,
        history: int,
        chunk: int,
        keys: Sequence[str] | None = None,
        episodes: Sequence[int] | None = None,
        future: int = 0,
        future_keys: Sequence[str] = (),
    ):
        if isinstance(path_or_dataset, EpisodeDataset):
            self.dataset = path_or_dataset
        else:
            self.dataset = EpisodeDataset(path_or_dataset)
        if history < 1 or chunk < 1:
            raise ConfigError(f"history and chunk must be >= 1, got history={history}, chunk={chunk}")
        self.history, self.chunk = int(history), int(chunk)
        self.keys = self.dataset.observation_keys(keys)
        self.future, self.future_keys = int(future), tuple(future_keys) if future else ()
        records = self.dataset.episodes
        selected = range(len(records)) if episodes is None else [int(e) for e in episodes]
        for e in selected:
            if not 0 <= e < len(records):
                raise ConfigError(f"episode {e} is not in {self.dataset.path}, which has {len(records)} episodes")
        self.episodes = np.asarray(selected, dtype=np.int64)  # (E,)
        lengths = np.array([records[e].length for e in self.episodes], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(lengths)])  # (E+1,): first item of each episode
        self._episode_tasks = np.array(
            [self.dataset.task_index(records[e].task) for e in self.episodes], dtype=np.int64
        )  # (E,)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(episode index, timestep) of each item number in `items`."""
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)}): {items.min()}..{items.max()}")
        position = np.searchsorted(self._offsets, items, side="right") - 1
        return self.episodes[position], items - self._offsets[position]

    def item_tasks(self) -> np.ndarray:
        """The task index of every item (int64, (len(self),)), from the manifest alone: the sampler's labels."""
        return np.repeat(self._episode_tasks, np.diff(self._offsets))

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> WindowBatch:
        """A batch of items, read in one pass; torch's DataLoader calls this once per batch."""
        episodes, steps = self.locate(np.asarray(indices))
        future = {"future": self.future, "future_keys": self.future_keys}
        tensors, slot = _allocate(
            self.dataset.window_layout(len(episodes), self.history, self.chunk, self.keys, **future)
        )
        out = {name: t.numpy() for name, t in tensors.items()}
        batch = self.dataset.windows(episodes, steps, self.history, self.chunk, self.keys, out=out, **future)
        return WindowBatch({**tensors, "instruction": batch["instruction"]}, slot)


class WindowBatch(Sequence):
    """B windows already stacked into tensors (`data`), that also reads as a list of B per-window dicts,
    so torch's default collate, Subset and StackDataset work with it. `collate_windows` returns `data`
    as it is, saving the copy that re-stacking would make. `slot` is the worker's reusable
    shared buffer that holds it (polyact.data.transport), -1 for none."""

    def __init__(self, data: dict[str, Any], slot: int = -1):
        self.data = data
        self.slot = slot
        self._items: list[dict[str, Any]] | None = None  # per-window views, made on first use only

    def __len__(self) -> int:
        return len(self.data["timestep"])

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        if self._items is None:
            self._items = [{name: value[b] for name, value in self.data.items()} for b in range(len(self))]
        return self._items[i]


def collate_windows(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader collate_fn for WindowDataset: the stacked batch without a copy (anything else: default).

    From a worker, the batch travels in a reused shared buffer (polyact.data.transport): its tensors
    must not be sent on to another process without copying them first.
    """
    if isinstance(batch, WindowBatch):
        return SharedBatch(batch.data, batch.slot) if batch.slot >= 0 else batch.data
    return torch.utils.data.default_collate(batch)


def _allocate(layout: dict[str, tuple[tuple[int, ...], np.dtype]]) -> tuple[dict[str, torch.Tensor], int]:
    """Uninitialised tensors for a batch, all views of one storage, and its transport slot (-1: none).

    In a DataLoader worker the storage is shared memory, where the batch must end up anyway (torch's
    default collate does the same), taken from the worker's reusable buffers. One storage per batch
    instead of one per tensor also halves the cost of handing batches to the main process (each shared
    storage costs a file-descriptor transfer): measured in bench/README.md.
    """
    offsets, total = {}, 0
    for name, (shape, dtype) in layout.items():
        offsets[name] = total
        total += -(-math.prod(shape) * dtype.itemsize // _ALIGN) * _ALIGN  # next multiple of _ALIGN bytes
    if torch.utils.data.get_worker_info() is not None:
        storage, slot = shared_storage(total)
    else:
        storage, slot = torch.UntypedStorage(total), -1
    tensors = {}
    for name, (shape, dtype) in layout.items():
        empty = torch.from_numpy(np.empty(0, dtype))
        tensors[name] = empty.set_(storage, offsets[name] // dtype.itemsize, shape)
    return tensors, slot


_ALIGN = 64  # bytes: every array of a batch starts on a cache line

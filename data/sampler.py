"""TaskBalancedSampler: every task equally often, whatever its number of windows; resumable and DDP-aware.

Each draw picks a task uniformly, then one of its items uniformly (with replacement). An epoch's
draws are a pure function of (seed, epoch), so a run resumed from `state_dict()` continues with
exactly the indices it would have seen; with several replicas, rank r takes draws r, r+R, r+2R, ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from polyact.errors import ConfigError


class TaskLabelled(Protocol):
    def item_tasks(self) -> np.ndarray: ...


class TaskBalancedSampler(torch.utils.data.Sampler[int]):
    """Item indices for a DataLoader, balanced over task labels (e.g. `WindowDataset.item_tasks()`).

    `num_samples` is the number of draws per epoch over all replicas (default: one per item); each rank
    yields ceil(num_samples / num_replicas) of them. Epochs advance by themselves at the end of each
    full pass, or by `set_epoch` (as with DistributedSampler).
    """

    def __init__(
        self,
        labels: np.ndarray | Sequence | TaskLabelled,
        *,
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        super().__init__()
        labels = np.asarray(labels.item_tasks() if hasattr(labels, "item_tasks") else labels)
        if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iu":
            raise ConfigError(f"labels must be a non-empty 1-D integer array, got {labels.dtype}{list(labels.shape)}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ConfigError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas=}, {rank=}")
        total = labels.size if num_samples is None else int(num_samples)
        if total < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        self._order = np.argsort(labels, kind="stable")  # (N,): items grouped by task
        self.tasks, self._starts, self._counts = np.unique(labels[self._order], return_index=True, return_counts=True)
        self._num_items = labels.size
        self.seed, self.num_replicas, self.rank = int(seed), num_replicas, rank
        self._total = total  # draws per epoch over all replicas
        self.num_samples = math.ceil(total / num_replicas)  # per rank and epoch
        self.epoch = 0
        self._consumed = 0  # indices of the current epoch already handed out by this rank

    def _draws(self) -> np.ndarray:
        """This rank's items for the current epoch, (num_samples,) int64.

        The epoch's draws do not depend on the number of replicas (padded by wrapping around to split
        evenly), so N ranks together see exactly the batches that one process would."""
        rng = np.random.default_rng([self.seed, self.epoch])
        task = rng.integers(len(self._counts), size=self._total)  # (total,) position in self.tasks
        within = rng.integers(0, self._counts[task])  # (total,) uniform item of that task
        draws = self._order[self._starts[task] + within]
        padding = self.num_samples * self.num_replicas - self._total
        return np.concatenate([draws, draws[:padding]])[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        draws = self._draws()
        for i in range(self._consumed, len(draws)):
            self._consumed = i + 1
            yield int(draws[i])
        self.epoch += 1
        self._consumed = 0

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning at the next iteration."""
        self.epoch = int(epoch)
        self._consumed = 0

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """Where sampling stands. A DataLoader prefetches indices ahead of training, so pass `consumed`
        (this rank's samples actually trained on this epoch, e.g. steps * batch_size) for an exact resume."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "consumed": self._consumed if consumed is None else int(consumed),
            "num_samples": self.num_samples,
            "num_replicas": self.num_replicas,
            "num_items": self._num_items,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`; the next iteration yields what the saved one would have yielded next."""
        mine = self.state_dict()
        for key in ("num_samples", "num_replicas", "num_items"):
            if state[key] != mine[key]:
                raise ConfigError(
                    f"sampler state has {key}={state[key]}, this sampler has {mine[key]}: "
                    "resume with the same dataset, num_samples and number of replicas"
                )
        if not 0 <= state["consumed"] <= self.num_samples:
            raise ConfigError(f"sampler state has consumed={state['consumed']}, outside [0, {self.num_samples}]")
        self.seed, self.epoch, self._consumed = int(state["seed"]), int(state["epoch"]), int(state["consumed"])

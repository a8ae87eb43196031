"""Windows/s and CPU per window of a torch DataLoader: the one measurement every loader row of the
benchmarks uses, polyact's (bench/windows.py, bench/storage.py) and LeRobot's (bench/lerobot_windows.py).

It imports torch and the standard library only, never polyact, so LeRobot's own environment (which cannot
hold polyact) runs the same code on its side of the comparison.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, default_collate


def loader_throughput(
    dataset: Dataset,
    workers: int,
    batch_size: int,
    seconds: float,
    count_key: str,
    collate: Callable[[list[Any]], Any] = default_collate,
    warmup: int = 5,
) -> tuple[float, float]:
    """Windows per second over random-order batches after `warmup` batches (worker start-up excluded), and
    CPU microseconds per window over the whole run, main process and workers: other jobs on the machine
    cut the first in proportion to the cores they take, and inflate the second much less. A batch's
    window count is the length of its `count_key` entry."""
    before = _cpu_seconds()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(0)),
        num_workers=workers,
        collate_fn=collate,
        prefetch_factor=4 if workers else None,
        persistent_workers=workers > 0,
    )
    seen, timed, total, start = 0, 0, 0, 0.0
    while not timed or time.perf_counter() - start < seconds:  # as many epochs as it takes
        for batch in loader:
            seen += 1
            total += len(batch[count_key])
            if seen == warmup:
                start = time.perf_counter()
            elif seen > warmup:
                timed += len(batch[count_key])
                if time.perf_counter() - start > seconds:
                    break
    rate = timed / (time.perf_counter() - start)
    del loader, batch  # joins the workers, so their CPU time is counted
    return rate, (_cpu_seconds() - before) / total * 1e6


def _cpu_seconds() -> float:
    """User + system time of this process and of its finished children (the DataLoader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

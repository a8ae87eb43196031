"""One recorded episode in memory, as the collector hands it to the dataset writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Episode:
    """Arrays are stacked over time, T steps: `observations[key][t]` is what the policy saw before
    taking `actions[t]`. Keys follow polyact.contract (`rgb/<camera>`, `state`, ...), without the
    instruction, which is constant over an episode and kept in `instruction`."""

    task: str
    instruction: str
    seed: int
    success: bool
    observations: dict[str, np.ndarray]
    actions: np.ndarray  # (T, A) float32
    rewards: np.ndarray  # (T,) float32
    successes: np.ndarray  # (T,) bool: the task's success test after each action
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable per-episode metadata

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])

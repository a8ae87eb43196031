"""A trained checkpoint as a BatchPolicy for evaluation: `load_policy(dir)`.

The policy runs through `polyact.policies.ChunkRunner`, the same runner the policy server uses: per
slot the observation history, the chunk executor (receding horizon or temporal ensembling) and the
sampling noise, seeded by each episode's own seed so that an episode's actions do not depend on which
other episodes share its forward passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyact.contract import PolicyRequirements
from polyact.errors import ConfigError
from polyact.eval.policy import ObsBatch


class TrainedPolicy:
    """A chunk-predicting policy for N evaluation slots."""

    def __init__(self, policy: Any, num_envs: int, execution: str = ""):
        from polyact.policies import ChunkRunner

        self.runner = ChunkRunner(policy, num_envs, execution)
        self.requirements = PolicyRequirements.of(policy.config, policy.env_spec)
        self._fresh: set[int] = set(range(num_envs))

    def reset(self, env_ids: Sequence[int]) -> None:
        self._fresh.update(int(i) for i in env_ids)

    def act(self, obs: ObsBatch, infos: Sequence[dict[str, Any]], env_ids: Sequence[int]) -> np.ndarray:
        starting = [(i, int(infos[row]["seed"])) for row, i in enumerate(env_ids) if i in self._fresh]
        if starting:  # an episode's first step: its reset info carries its seed
            self.runner.reset([i for i, _ in starting], [seed for _, seed in starting])
            self._fresh.difference_update(i for i, _ in starting)
        keys = [k for k in self.runner.keys if k in obs]  # only what the policy reads, not every camera array
        rows = [{k: obs[k][row] for k in keys} for row in range(len(env_ids))]
        return self.runner.act(rows, env_ids)  # (B, A)


def load_policy(path: str, num_envs: int, execution: str = "", device: str = "cpu") -> TrainedPolicy:
    """The checkpoint at `path` for `num_envs` slots; `execution` '' = the checkpoint's mode."""
    if not Path(path, "config.json").is_file():
        raise ConfigError(f"policy={path!r} is neither 'expert' nor a checkpoint directory (one with a config.json)")
    from polyact.policies import VLAPolicy

    return TrainedPolicy(VLAPolicy.from_pretrained(path, map_location=device), num_envs, execution)

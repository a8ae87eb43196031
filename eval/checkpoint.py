"""Where a trained checkpoint plugs into evaluation: `load_policy(dir)` builds a BatchPolicy.

It uses polyact.policies: `VLAPolicy.from_pretrained(dir, map_location)` (in eval mode), its `config`
(PolicyConfig: cameras, image size, action/state/goal dimensions, history h, chunk H, execution mode),
`predict_chunk(batch, noise=...) -> (B, H, A)` actions in raw units, `stack_observations` (the loader
layout with padded history) and `make_executor(mode, num_envs, config)`, whose executor keeps one
action queue per environment slot (`due`, `add`, `pop`, `reset`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyact.errors import ConfigError, unknown_name
from polyact.eval.policy import ObsBatch, PolicyRequirements

EXECUTION_MODES = ("receding_horizon", "temporal_ensemble")


class ChunkingPolicy:
    """A chunk-predicting policy as a BatchPolicy: per slot it keeps the last h observations and an
    action queue, and one forward pass per step serves every slot whose executor wants a new chunk.

    Sampling heads (diffusion, flow) start from noise drawn from a generator seeded by the episode's
    own seed, so an episode's actions do not depend on which other episodes share its batches.
    """

    def __init__(self, policy: Any, executor: Any, num_envs: int):
        from polyact.policies.history import stack_observations

        self._stack = stack_observations
        self._policy, self._executor = policy, executor
        c = policy.config
        self._history = c.history
        self._noise_shape = (c.chunk, c.action_dim)
        self._recent: list[deque] = [deque(maxlen=c.history) for _ in range(num_envs)]
        self._noise: list[np.random.Generator | None] = [None] * num_envs
        self.requirements = PolicyRequirements(
            cameras=tuple(c.cameras),
            action_dim=int(c.action_dim),
            state_dim=int(c.state_dim),
            goal_dim=int(c.goal_dim),
            image_size=(int(c.image_height), int(c.image_width)) if c.image_height else None,
        )

    def reset(self, env_ids: Sequence[int]) -> None:
        for i in env_ids:
            self._recent[i].clear()
            self._noise[i] = None
        self._executor.reset(env_ids)

    def act(self, obs: ObsBatch, infos: Sequence[dict[str, Any]], env_ids: Sequence[int]) -> np.ndarray:
        import torch

        for row, i in enumerate(env_ids):
            self._recent[i].append({k: v[row] for k, v in obs.items()})
            if self._noise[i] is None:  # the episode's first step: its reset info carries its seed
                self._noise[i] = np.random.default_rng(int(infos[row]["seed"]))
        due = [i for i, d in zip(env_ids, self._executor.due(env_ids), strict=True) if d]
        if due:
            batch = self._stack([self._recent[i] for i in due], self._history)
            noise = np.stack([self._noise[i].standard_normal(self._noise_shape, dtype=np.float32) for i in due])
            noise_t = torch.as_tensor(noise, device=self._policy.device)  # (b, H, A), unused by non-sampling heads
            self._executor.add(due, np.asarray(self._policy.predict_chunk(batch, noise=noise_t), np.float32))
        return np.asarray(self._executor.pop(env_ids), np.float32)  # (B, A)


def load_policy(path: str, num_envs: int, execution: str = "", device: str = "cpu") -> ChunkingPolicy:
    """The checkpoint at `path` as a BatchPolicy for `num_envs` slots; `execution` '' = the checkpoint's mode."""
    if not Path(path, "config.json").is_file():
        raise ConfigError(f"policy={path!r} is neither 'expert' nor a checkpoint directory (one with a config.json)")
    try:
        from polyact.policies import VLAPolicy, make_executor
    except ImportError as err:
        raise ConfigError(
            f"policy={path!r}: evaluating a checkpoint needs polyact.policies.VLAPolicy and make_executor, "
            f"which this installation does not provide ({err}); policy=expert evaluates the scripted experts"
        ) from None
    policy = VLAPolicy.from_pretrained(path, map_location=device)
    mode = execution or policy.config.execution
    if mode not in EXECUTION_MODES:
        raise unknown_name("execution mode", mode, EXECUTION_MODES)
    return ChunkingPolicy(policy, make_executor(mode, num_envs, policy.config), num_envs)

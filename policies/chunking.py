"""Turning predicted action chunks into one action per step for N parallel environments.

Two executors, the ones of Octo's gym wrappers (octo-models/octo octo/utils/gym_wrappers.py):

- `RecedingHorizon(num_envs, execute=k)`: plan a chunk of H, execute its first k actions, re-plan
  (Diffusion Policy: predict 16, execute 8). Only the environments whose queue ran out are re-planned.
- `TemporalEnsemble(num_envs, horizon=H, exp_weight=m)`: plan every step; the action for step t is the
  weighted average of what each of the last H chunks predicted for t, weights exp(-m * i) with i = 0 for
  the OLDEST prediction (ACT, tonyzhaozh/act imitate_episodes.py, m = 0.01; Octo's
  TemporalEnsembleWrapper, m = 0: a uniform average).

Both keep one queue per environment slot and share `due(env_ids) -> (n,) bool` (needs a new chunk
this step), `add(env_ids, chunks (n, H, A))`, `pop(env_ids) -> (n, A)` and `reset(env_ids)`; `env_ids`
None means every slot. `make_executor(mode, num_envs, config)` builds the one a PolicyConfig names
(`execution`), and `ChunkRunner` drives a policy with one, plus the observation history.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from polyact.errors import ContractError, unknown_name
from polyact.policies.config import EXECUTIONS
from polyact.policies.history import ObservationHistory


class ChunkExecutor(Protocol):
    def due(self, env_ids: Sequence[int] | None = None) -> np.ndarray: ...

    def add(self, env_ids: Sequence[int], chunks: np.ndarray) -> None: ...

    def pop(self, env_ids: Sequence[int] | None = None) -> np.ndarray: ...

    def reset(self, env_ids: Sequence[int] | None = None) -> None: ...


def _ids(env_ids: Sequence[int] | None, n: int) -> list[int]:
    return list(range(n)) if env_ids is None else [int(i) for i in env_ids]


class RecedingHorizon:
    """Execute the first `execute` actions of each chunk, then ask for a new one."""

    def __init__(self, num_envs: int, execute: int):
        self.execute = execute
        self.queues: list[deque] = [deque() for _ in range(num_envs)]

    def due(self, env_ids: Sequence[int] | None = None) -> np.ndarray:
        return np.array([not self.queues[i] for i in _ids(env_ids, len(self.queues))], dtype=bool)

    def add(self, env_ids: Sequence[int], chunks: np.ndarray) -> None:
        if chunks.shape[1] < self.execute:
            raise ContractError(f"chunks of {chunks.shape[1]} actions cannot be executed {self.execute} at a time")
        for i, chunk in zip(env_ids, chunks, strict=True):
            self.queues[i] = deque(chunk[: self.execute])

    def pop(self, env_ids: Sequence[int] | None = None) -> np.ndarray:
        """The next action of each listed environment, (n, A)."""
        ids = _ids(env_ids, len(self.queues))
        empty = [i for i in ids if not self.queues[i]]
        if empty:
            raise ContractError(f"environments {empty} need a new chunk first")
        return np.stack([self.queues[i].popleft() for i in ids])

    def reset(self, env_ids: Sequence[int] | None = None) -> None:
        for i in _ids(env_ids, len(self.queues)):
            self.queues[i].clear()


class TemporalEnsemble:
    """Average, for the current step, the predictions of every chunk made in the last `horizon` steps."""

    def __init__(self, num_envs: int, horizon: int, exp_weight: float = 0.01):
        self.horizon, self.exp_weight = horizon, exp_weight
        # per env, oldest first: [chunk (H, A), steps since it was predicted]
        self.chunks: list[list[list[Any]]] = [[] for _ in range(num_envs)]
        self.fresh = np.zeros(num_envs, dtype=bool)

    def due(self, env_ids: Sequence[int] | None = None) -> np.ndarray:
        return ~self.fresh[_ids(env_ids, len(self.chunks))]  # a new chunk every step

    def add(self, env_ids: Sequence[int], chunks: np.ndarray) -> None:
        for i, chunk in zip(env_ids, chunks, strict=True):
            self.chunks[i].append([np.asarray(chunk)[: self.horizon], 0])
            self.fresh[i] = True

    def weights(self, n: int) -> np.ndarray:
        """Normalised weights of n overlapping predictions, oldest first."""
        w = np.exp(-self.exp_weight * np.arange(n))
        return w / w.sum()

    def pop(self, env_ids: Sequence[int] | None = None) -> np.ndarray:
        """The ensembled action of each listed environment, (n, A)."""
        ids = _ids(env_ids, len(self.chunks))
        stale = [i for i in ids if not self.fresh[i]]
        if stale:
            raise ContractError(f"environments {stale} need a new chunk first")
        actions = []
        for i in ids:
            env = self.chunks[i]
            predictions = np.stack([chunk[age] for chunk, age in env])  # (n, A), oldest first
            actions.append((self.weights(len(env))[:, None] * predictions).sum(0))
            for entry in env:
                entry[1] += 1
            env[:] = [e for e in env if e[1] < min(self.horizon, len(e[0]))]
            self.fresh[i] = False
        return np.stack(actions)

    def reset(self, env_ids: Sequence[int] | None = None) -> None:
        for i in _ids(env_ids, len(self.chunks)):
            self.chunks[i] = []
            self.fresh[i] = False


class ChunkRunner:
    """A policy acting in N environments: keeps their histories, plans for those that need it, and
    returns one action each per step. `policy` needs `config.history` and `predict_chunk(batch)`."""

    def __init__(self, policy: Any, num_envs: int, executor: ChunkExecutor):
        self.policy, self.executor = policy, executor
        self.history = ObservationHistory(num_envs, policy.config.history)

    def act(self, observations: Sequence[Mapping[str, Any]], **sample_kwargs: Any) -> np.ndarray:
        """One contract observation per environment -> actions (N, A) in raw units."""
        self.history.push(observations)
        ids = np.flatnonzero(self.executor.due()).tolist()
        if ids:
            self.executor.add(ids, self.policy.predict_chunk(self.history.batch(ids), **sample_kwargs))
        return self.executor.pop()

    def reset(self, env_ids: Sequence[int] | None = None) -> None:
        self.history.reset(env_ids)
        self.executor.reset(env_ids)


def make_executor(mode: str, num_envs: int, config: Any) -> ChunkExecutor:
    """The executor `mode` names ("receding_horizon": `config.execute` actions a chunk;
    "temporal_ensemble": weights exp(-config.ensemble_weight * i) over `config.chunk` steps)."""
    if mode == "receding_horizon":
        return RecedingHorizon(num_envs, config.execute)
    if mode == "temporal_ensemble":
        return TemporalEnsemble(num_envs, config.chunk, config.ensemble_weight)
    raise unknown_name("execution mode", mode, EXECUTIONS)

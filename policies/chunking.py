"""Running a chunking policy over time: predicted action chunks -> one action per step, for N slots.

Two executors, the ones of Octo's gym wrappers (octo-models/octo octo/utils/gym_wrappers.py):

- `RecedingHorizon(num_envs, replan_every=k)`: plan a chunk of H, execute its first k actions, re-plan
  (Diffusion Policy: predict 16, execute 8). Only the environments whose queue ran out are re-planned.
- `TemporalEnsemble(num_envs, chunk=H, exp_weight=m)`: plan every step; the action for step t is the
  weighted average of what each of the last H chunks predicted for t, weights exp(-m * i) with i = 0 for
  the OLDEST prediction (ACT, tonyzhaozh/act imitate_episodes.py, m = 0.01; Octo's
  TemporalEnsembleWrapper, m = 0: a uniform average).

Both keep one queue per environment slot and share `due(env_ids) -> (n,) bool` (needs a new chunk
this step), `add(env_ids, chunks (n, H, A))`, `pop(env_ids) -> (n, A)` and `reset(env_ids)`; `env_ids`
None means every slot. `make_executor(mode, num_envs, config)` builds the one a PolicyConfig names
(`execution`). `ChunkRunner` drives a policy with one, plus the observation history and per-episode
noise; `plan_chunks` is its forward pass, which the policy server calls directly (its clients keep
their own histories). The ROS bridge keeps a buffer of its own for one thing this module does not do:
latency compensation (deploy/ros/core.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from polyact.contract import PolicyRequirements
from polyact.errors import ContractError, unknown_name
from polyact.policies.config import EXECUTIONS
from polyact.policies.history import ObservationHistory, stack_observations


class ChunkExecutor(Protocol):
    def due(self, env_ids: Sequence[int] | None = None) -> np.ndarray: ...

    def add(self, env_ids: Sequence[int], chunks: np.ndarray) -> None: ...

    def pop(self, env_ids: Sequence[int] | None = None) -> np.ndarray: ...

    def reset(self, env_ids: Sequence[int] | None = None) -> None: ...


def _ids(env_ids: Sequence[int] | None, n: int) -> list[int]:
    return list(range(n)) if env_ids is None else [int(i) for i in env_ids]


class RecedingHorizon:
    """Execute the first `replan_every` actions of each chunk, then ask for a new one."""

    def __init__(self, num_envs: int, replan_every: int):
        self.replan_every = replan_every
        self.queues: list[deque] = [deque() for _ in range(num_envs)]

    def due(self, env_ids: Sequence[int] | None = None) -> np.ndarray:
        return np.array([not self.queues[i] for i in _ids(env_ids, len(self.queues))], dtype=bool)

    def add(self, env_ids: Sequence[int], chunks: np.ndarray) -> None:
        if chunks.shape[1] < self.replan_every:
            raise ContractError(f"chunks of {chunks.shape[1]} actions cannot be executed {self.replan_every} at a time")
        for i, chunk in zip(env_ids, chunks, strict=True):
            self.queues[i] = deque(chunk[: self.replan_every])

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
    """Average, for the current step, the predictions of every chunk made in the last `chunk` steps."""

    def __init__(self, num_envs: int, chunk: int, exp_weight: float = 0.01):
        self.chunk, self.exp_weight = chunk, exp_weight
        # per env, oldest first: [chunk (H, A), steps since it was predicted]
        self.chunks: list[list[list[Any]]] = [[] for _ in range(num_envs)]
        self.fresh = np.zeros(num_envs, dtype=bool)

    def due(self, env_ids: Sequence[int] | None = None) -> np.ndarray:
        return ~self.fresh[_ids(env_ids, len(self.chunks))]  # a new chunk every step

    def add(self, env_ids: Sequence[int], chunks: np.ndarray) -> None:
        for i, chunk in zip(env_ids, chunks, strict=True):
            self.chunks[i].append([np.asarray(chunk)[: self.chunk], 0])
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
            env[:] = [e for e in env if e[1] < min(self.chunk, len(e[0]))]
            self.fresh[i] = False
        return np.stack(actions)

    def reset(self, env_ids: Sequence[int] | None = None) -> None:
        for i in _ids(env_ids, len(self.chunks)):
            self.chunks[i] = []
            self.fresh[i] = False


class ChunkRunner:
    """A chunking policy run over time in N slots (environments or robots): the one implementation of it.
    Evaluation (eval/trained.py) runs policies through it; the policy server (deploy/policy.py), whose
    clients keep their own histories, calls its forward pass `plan_chunks` directly.

    Per slot it keeps the last h observations (padded like training windows at an episode's start), the
    executor's action queue, and a noise generator seeded by the episode's seed, so that a sampling
    head's actions in an episode do not depend on which other slots share its forward passes.
    `policy` needs `config` (history, chunk, action_dim, and the fields PolicyRequirements reads) and
    `predict_chunk(batch, noise=...)`.
    """

    def __init__(self, policy: Any, num_slots: int, execution: str = ""):
        self.policy = policy
        config = policy.config
        self.executor = make_executor(execution or config.execution, num_slots, config)
        self.history = ObservationHistory(num_slots, config.history)
        self.keys = observation_keys(config)
        self.noise: list[np.random.Generator] = [np.random.default_rng() for _ in range(num_slots)]

    def reset(self, slots: Sequence[int], seeds: Sequence[int | None] | None = None) -> None:
        """New episodes start in `slots`; `seeds` (one per slot, None: unseeded) seed their noise."""
        seeds = seeds if seeds is not None else [None] * len(slots)
        for slot, seed in zip(slots, seeds, strict=True):
            self.noise[slot] = np.random.default_rng(seed)
        self.history.reset(slots)
        self.executor.reset(slots)

    def act(self, observations: Sequence[Mapping[str, Any]], slots: Sequence[int] | None = None) -> np.ndarray:
        """One contract observation per listed slot (all slots when None) -> their actions (n, A), raw units.

        One forward pass serves every listed slot whose executor wants a new chunk this step."""
        slots = list(range(len(self.noise))) if slots is None else [int(s) for s in slots]
        self.history.push([{k: o[k] for k in self.keys if k in o} for o in observations], slots)
        due = [s for s, d in zip(slots, self.executor.due(slots), strict=True) if d]
        if due:
            histories = [self.history.recent(s) for s in due]
            self.executor.add(due, plan_chunks(self.policy, histories, [self.noise[s] for s in due]))
        return np.asarray(self.executor.pop(slots), np.float32)


def observation_keys(config: Any) -> list[str]:
    """The observation keys a policy with this config reads, the instruction included, and those it reads
    when present (an oracle's `subgoal`, which then wins over the policy's sub-goal predictor)."""
    requirements = PolicyRequirements.of(config)
    return [*requirements.inputs(), *requirements.optional_inputs(), "instruction"]


def plan_chunks(
    policy: Any, histories: Sequence[Sequence[Mapping[str, Any]]], noise: Sequence[np.random.Generator]
) -> np.ndarray:
    """Action chunks (B, H, A) float32 for B observation histories (each oldest first), the sampling
    noise of row b drawn from `noise[b]` alone (heads that do not sample ignore it)."""
    import torch

    c = policy.config
    draws = np.stack([rng.standard_normal((c.chunk, c.action_dim), np.float32) for rng in noise])  # (B, H, A)
    batch = stack_observations(histories, c.history)
    chunks = policy.predict_chunk(batch, noise=torch.as_tensor(draws, device=policy.device))
    return np.asarray(chunks, np.float32)


def make_executor(mode: str, num_envs: int, config: Any) -> ChunkExecutor:
    """The executor `mode` names ("receding_horizon": `config.replan_every` actions a chunk;
    "temporal_ensemble": weights exp(-config.ensemble_weight * i) over `config.chunk` steps)."""
    if mode == "receding_horizon":
        return RecedingHorizon(num_envs, config.replan_every)
    if mode == "temporal_ensemble":
        return TemporalEnsemble(num_envs, config.chunk, config.ensemble_weight)
    raise unknown_name("execution mode", mode, EXECUTIONS)

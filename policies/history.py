"""Observation history at inference: the last h contract observations of each environment, as a batch.

The policy trains on windows whose history is padded at the episode start (`obs_is_pad`); at
inference an environment that has taken fewer than h steps is padded the same way, by repeating its
oldest observation and marking the repeats as padding.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from polyact.errors import ContractError


def as_loader_batch(obs: Mapping[str, Any] | Sequence[Mapping[str, Any]], history: int) -> Mapping[str, Any]:
    """A loader-layout batch from: one contract observation (`instruction` a str); a batch of them
    (contract keys with a batch axis, `instruction` a list: evaluation's ObsBatch); a list of single
    observations; or a loader-layout batch already (`obs/...` keys with history, `obs_is_pad`).
    Observations without history count as the first step of an episode (earlier steps padded)."""
    if isinstance(obs, Mapping) and "obs_is_pad" in obs:
        return obs
    if isinstance(obs, Mapping):
        instruction = obs.get("instruction")
        if isinstance(instruction, str):
            obs = [obs]
        elif isinstance(instruction, Sequence):
            obs = [
                {k: (instruction[i] if k == "instruction" else v[i]) for k, v in obs.items()}
                for i in range(len(instruction))
            ]
        else:
            raise ContractError(f"'instruction' must be a str or a list of str, got {instruction!r:.60}")
    return stack_observations([[o] for o in obs], history)


def stack_observations(histories: Sequence[Sequence[Mapping[str, Any]]], history: int) -> dict[str, Any]:
    """Per env its most recent observations, oldest first (1..h of them) -> a loader-layout batch:
    `obs/<key>` (B, h, ...), `obs_is_pad` (B, h), `instruction` list[str]."""
    if not histories or any(not h for h in histories):
        raise ContractError("need at least one observation per environment")
    keys = [k for k in histories[0][-1] if k != "instruction"]
    batch: dict[str, Any] = {f"obs/{k}": [] for k in keys}
    pads, instructions = [], []
    for env in histories:
        recent = list(env)[-history:]
        missing = history - len(recent)
        steps = [recent[0]] * missing + recent
        for k in keys:
            if k not in steps[-1]:
                raise ContractError(f"observation lacks {k!r}; the first environment's has {sorted(keys)}")
            batch[f"obs/{k}"].append(np.stack([np.asarray(s[k]) for s in steps]))
        pads.append([True] * missing + [False] * len(recent))
        instruction = steps[-1].get("instruction")
        if not isinstance(instruction, str):
            raise ContractError(f"observation 'instruction' must be a str, got {type(instruction).__name__}")
        instructions.append(instruction)
    out: dict[str, Any] = {k: np.stack(v) for k, v in batch.items()}
    out["obs_is_pad"] = np.asarray(pads, dtype=bool)
    out["instruction"] = instructions
    return out


class ObservationHistory:
    """Keeps the last `history` observations of `num_envs` environments; `reset(env_ids)` forgets them."""

    def __init__(self, num_envs: int, history: int):
        self.history = history
        self.buffers: list[deque] = [deque(maxlen=history) for _ in range(num_envs)]

    def push(self, observations: Sequence[Mapping[str, Any]], env_ids: Sequence[int] | None = None) -> None:
        """One new observation per listed environment (every environment when None), in that order."""
        ids = range(len(self.buffers)) if env_ids is None else env_ids
        if len(observations) != len(ids):
            raise ContractError(f"got {len(observations)} observations for {len(ids)} environments")
        for i, obs in zip(ids, observations, strict=True):
            self.buffers[i].append(obs)

    def recent(self, env_id: int) -> list[Mapping[str, Any]]:
        """The environment's kept observations, oldest first."""
        return list(self.buffers[env_id])

    def batch(self, env_ids: Sequence[int] | None = None) -> dict[str, Any]:
        ids = range(len(self.buffers)) if env_ids is None else env_ids
        return stack_observations([self.buffers[i] for i in ids], self.history)

    def reset(self, env_ids: Sequence[int] | None = None) -> None:
        for i in range(len(self.buffers)) if env_ids is None else env_ids:
            self.buffers[i].clear()

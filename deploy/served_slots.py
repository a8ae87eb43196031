"""N environment slots acting through a running `polyact serve`: the "served" placement of evaluation.

Evaluation workers without a GPU (Ray actors on CPU nodes, docs/eval.md) keep what belongs to each
episode, the last `history` observations and the receding-horizon queue of its chunk, and ask the
server for a new chunk when the queue runs out; the server batches the requests of all workers into
one forward pass on its GPU. It has the shape of evaluation's batch-policy protocol (`reset(env_ids)`,
`act(obs, infos, env_ids) -> (B, A)`, eval/policy.py) without importing it, as deploy never imports
eval; `polyact eval policy=ws://HOST:PORT` builds it (eval may import this module and the client, the
client side of deploy, never the server: docs/architecture.md). Its `requirements` are read from the
server's metadata, so evaluation refuses an environment the served policy does not fit before any
worker starts. Nothing here needs torch.

Each chunk request is seeded from its episode's seed and the chunk's number, so a sampling head's
episode is repeatable whichever other requests share the server's batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from polyact.contract import PolicyRequirements
from polyact.deploy.client import PolicyClient


def served_requirements(metadata: dict[str, Any]) -> PolicyRequirements:
    """What the served policy reads and writes, from the metadata its server sends on connect."""
    obs = metadata["observation"]
    rgb = [k for k in obs if k.startswith("rgb/")]
    return PolicyRequirements(
        cameras=tuple(k.split("/", 1)[1] for k in rgb),
        action_dim=len(metadata["action"]["names"]),
        state_dim=int(obs["state"]["shape"][0]),
        goal_dim=int(obs["goal"]["shape"][0]) if "goal" in obs else 0,
        image_size=(int(obs[rgb[0]]["shape"][0]), int(obs[rgb[0]]["shape"][1])) if rgb else None,
        depth=any(k.startswith("depth/") for k in obs),
        action_names=tuple(metadata["action"]["names"]),
        camera_poses=any(k.startswith("extrinsics/") for k in obs),
    )


class ServedSlots:
    """`num_envs` slots whose chunks come from the policy server at `url` (receding horizon)."""

    def __init__(self, url: str, num_envs: int, token: str | None = None, timeout: float = 30.0):
        from polyact.policies.chunking import RecedingHorizon

        self.client = PolicyClient(url, token, timeout=timeout)
        meta = self.client.metadata
        self.requirements = served_requirements(meta)
        self.keys = set(meta["observation"])
        self.executor = RecedingHorizon(num_envs, int(meta["replan_every"]))
        self.histories: list[deque] = [deque(maxlen=int(meta["history"])) for _ in range(num_envs)]
        self.seeds: list[int] = [0] * num_envs  # each slot's episode seed, from its first step's info
        self.chunks: list[int] = [0] * num_envs  # chunks asked for in the slot's episode
        self._fresh: set[int] = set(range(num_envs))

    def reset(self, env_ids: Sequence[int]) -> None:
        ids = [int(i) for i in env_ids]
        self.executor.reset(ids)
        for i in ids:
            self.histories[i].clear()
            self.chunks[i] = 0
        self._fresh.update(ids)

    def act(self, obs: dict[str, Any], infos: Sequence[dict[str, Any]], env_ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in env_ids]
        for row, i in enumerate(ids):
            if i in self._fresh:  # an episode's first step: its reset info carries its seed
                self.seeds[i] = int(infos[row].get("seed") or 0)
                self._fresh.discard(i)
            self.histories[i].append({k: obs[k][row] for k in self.keys if k in obs})
        for i, due in zip(ids, self.executor.due(ids), strict=True):
            if due:
                seed = int(np.random.SeedSequence([self.seeds[i], self.chunks[i]]).generate_state(1)[0])
                self.chunks[i] += 1
                chunk = self.client.infer(list(self.histories[i]), seed=seed)  # (H, A)
                self.executor.add([i], chunk[None])
        return np.asarray(self.executor.pop(ids), np.float32)  # (B, A)

    def close(self) -> None:
        self.client.close()

"""The batch-policy protocol that evaluation drives and the scripted-expert adapter.

Evaluation runs N environments in worker processes and, at every control step, makes ONE call

    actions = policy.act(obs, infos, env_ids)    # obs: a batch of the live environments

    obs        {"rgb/<camera>": (B, H, W, 3) uint8, "depth/<camera>": (B, H, W) float32,
                "intrinsics/<camera>": (B, 3, 3), "extrinsics/<camera>": (B, 4, 4), "state": (B, S),
                "goal": (B, G), "instruction": list of B str}   (contract.py, with a batch axis)
    infos      B step-info dicts (`success`, `task`; never the privileged simulator state)
    env_ids    B environment slots in [0, N): row b of `obs` comes from slot env_ids[b]
    actions    (B, A) float32

and `policy.reset(env_ids)` whenever new episodes start in those slots (before their first `act`),
so a policy that keeps per-environment state (an action-chunk queue, an observation history) knows
which rows belong together and when to forget them. A policy must be deterministic given its inputs
for evaluations to be repeatable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from polyact.contract import PolicyRequirements

ObsBatch = dict[str, Any]  # contract keys -> (B, ...) arrays; "instruction" -> list[str]


class BatchPolicy(Protocol):
    """A policy for N environments at once (see the module docstring for shapes)."""

    @property
    def requirements(self) -> PolicyRequirements | None:
        """None: the policy works with any environment of any suite (the scripted experts)."""

    def reset(self, env_ids: Sequence[int]) -> None: ...

    def act(self, obs: ObsBatch, infos: Sequence[dict[str, Any]], env_ids: Sequence[int]) -> np.ndarray: ...


def select_rows(obs: ObsBatch, rows: Sequence[int]) -> ObsBatch:
    """The observation batch restricted to `rows` (arrays are copied, so later steps cannot alter them)."""
    index = np.asarray(rows, dtype=np.intp)
    return {k: (v[index] if isinstance(v, np.ndarray) else [v[i] for i in rows]) for k, v in obs.items()}


class ExpertPolicy:
    """The suite's scripted experts as a BatchPolicy.

    Each worker runs one expert beside its environment (`EvalEnv(expert=True)`, built with
    `make_expert` for the episode's task) and reports its next action in the step info; this adapter
    returns those actions as one batch, so the experts are evaluated through exactly the path a
    trained policy takes.
    """

    requirements = None

    def reset(self, env_ids: Sequence[int]) -> None:
        """Experts are reset in the workers, at the start of each episode."""

    def act(self, obs: ObsBatch, infos: Sequence[dict[str, Any]], env_ids: Sequence[int]) -> np.ndarray:
        if any("expert_action" not in info for info in infos):
            raise RuntimeError("step infos carry no expert_action: the workers must be built with expert=True")
        return np.stack([np.asarray(info["expert_action"], np.float32) for info in infos])

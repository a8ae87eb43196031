"""The batch-policy protocol that evaluation drives, the scripted-expert adapter, and the fit check.

Evaluation runs N environments in worker processes and, at every control step, makes ONE call

    actions = policy.act(obs, infos, env_ids)    # obs: a batch of the live environments

    obs        {"rgb/<camera>": (B, H, W, 3) uint8, "depth/<camera>": (B, H, W) float32,
                "intrinsics/<camera>": (B, 3, 3), "extrinsics/<camera>": (B, 4, 4), "state": (B, S),
                "goal": (B, G), "instruction": list of B str}   (envs/contract.py, with a batch axis)
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
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from polyact.envs.contract import EnvSpec
from polyact.errors import ContractError

ObsBatch = dict[str, Any]  # contract keys -> (B, ...) arrays; "instruction" -> list[str]


@dataclass(frozen=True)
class PolicyRequirements:
    """What a policy was built for; evaluation refuses an environment that does not provide it.

    `image_size` is (height, width), or None for a policy that resizes whatever it gets.
    """

    cameras: tuple[str, ...]
    action_dim: int
    state_dim: int
    goal_dim: int
    image_size: tuple[int, int] | None = None


class BatchPolicy(Protocol):
    """A policy for N environments at once (see the module docstring for shapes)."""

    @property
    def requirements(self) -> PolicyRequirements | None:
        """None: the policy works with any environment of any suite (the scripted experts)."""

    def reset(self, env_ids: Sequence[int]) -> None: ...

    def act(self, obs: ObsBatch, infos: Sequence[dict[str, Any]], env_ids: Sequence[int]) -> np.ndarray: ...


def check_compatible(req: PolicyRequirements | None, spec: EnvSpec, policy_name: str = "the policy") -> None:
    """Raise ContractError listing every way `spec` differs from what the policy expects.

    Called before any worker starts, so a checkpoint for another camera set, action space or suite
    fails in seconds with the fix in the message, not after an hour of rollouts.
    """
    if req is None:
        return
    problems = []
    missing = [c for c in req.cameras if c not in spec.camera_names]
    if missing:
        problems.append(
            f"it reads cameras {list(req.cameras)} but the environment renders {list(spec.camera_names)} "
            f"(missing {missing}; set env.cameras=[{','.join(req.cameras)}])"
        )
    if req.action_dim != spec.action.dim:
        problems.append(
            f"it outputs {req.action_dim}-D actions but {spec.suite} takes {spec.action.dim}-D actions "
            f"({', '.join(spec.action.names)})"
        )
    if req.state_dim != len(spec.state_names):
        problems.append(f"it reads a {req.state_dim}-D state but {spec.suite} gives {len(spec.state_names)}-D")
    if req.goal_dim != len(spec.goal_names):
        problems.append(f"it reads a {req.goal_dim}-D goal but {spec.suite} gives {len(spec.goal_names)}-D")
    if req.image_size is not None and spec.cameras:
        size = (spec.cameras[0].height, spec.cameras[0].width)
        if tuple(req.image_size) != size:
            h, w = req.image_size
            problems.append(
                f"it was trained on {h}x{w} images but the environment renders {size[0]}x{size[1]} "
                f"(set env.height={h} env.width={w})"
            )
    if problems:
        raise ContractError(f"{policy_name} does not fit {spec.suite} task {spec.tasks[0]}: " + "; ".join(problems))


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

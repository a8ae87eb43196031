"""A state-only polyact checkpoint (policy.state_only=true) evaluated in batch on MJX: N seeds of one
rlbench_like task stepped together by envs/rlbench_like/mjx/evaluate.py, one policy forward for the
whole batch at each re-plan.

    python -m polyact.eval.mjx_states policy=runs/state/policy task=reach_target seeds=64 [out=episodes.json]

`BatchedStatePolicy` is evaluate_states' StatePolicy of a checkpoint: it runs the policy through
ChunkRunner, as `polyact eval` does (trained.py), so history, chunk execution (re-plan every k steps
per environment) and each episode's sampling noise, seeded by its seed, are the same as on the CPU env
and an episode's actions do not depend on the other environments of its batch. Normalisation comes with
the weights. Seeds are `polyact eval`'s (episode i starts from EVAL_SEED_BASE + i) and variations come
from the train split, as there, so the two evaluate the same episodes. It lives here because envs may
not import policies (docs/architecture.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polyact.atomic import write_json_atomic
from polyact.contract import EnvSpec, PolicyRequirements, check_compatible
from polyact.envs.config import EVAL_SEED_BASE
from polyact.envs.rlbench_like.arm import CONTROL_HZ, STATE_NAMES, action_spec
from polyact.envs.rlbench_like.env import DEFAULT_MAX_STEPS, SUITE_NAME
from polyact.envs.rlbench_like.variations import SPLITS
from polyact.errors import ConfigError, ContractError, unknown_name

if TYPE_CHECKING:
    from polyact.envs.rlbench_like.mjx.experts import Batch


def mjx_spec(task: str, task_state: bool = False) -> EnvSpec:
    """What evaluate_states gives a policy: the CPU env's state in the `default` action mode, no camera;
    with `task_state`, the props' poses after it (env.task_state=true)."""
    props: tuple[str, ...] = ()
    if task_state:
        from polyact.envs.rlbench_like import TASKS
        from polyact.envs.rlbench_like.scene import build_model
        from polyact.envs.rlbench_like.task_state import TaskState

        props = TaskState(build_model(TASKS[task]().build)).names
    return EnvSpec(
        suite=SUITE_NAME,
        tasks=(task,),
        cameras=(),
        state_names=(*STATE_NAMES, *props),
        goal_names=(),
        action=action_spec("default", None),
        control_hz=CONTROL_HZ,
        max_episode_steps=DEFAULT_MAX_STEPS,
        notes={"action_mode": "default"},
    )


class BatchedStatePolicy:
    """A state-only policy for the N environments of one evaluate_states call, whose episodes start
    from `seeds`: (N, S) states and N instructions -> (N, A) actions. Build one per call. `task_state`:
    it was trained on states with the props' poses (env.task_state=true), so evaluate_states must give them."""

    def __init__(self, policy: Any, task: str, seeds: Sequence[int]):
        from polyact.policies import ChunkRunner

        req = PolicyRequirements.of(policy.config, policy.env_spec)
        if req.cameras:
            raise ContractError(
                f"the policy reads cameras {list(req.cameras)}; MJX gives states only: train one with "
                "policy.state_only=true"
            )
        trained = policy.env_spec.state_names if policy.env_spec else STATE_NAMES
        self.task_state = len(trained) > len(STATE_NAMES)
        spec = mjx_spec(task, self.task_state)
        if self.task_state and tuple(trained) != spec.state_names:
            raise ContractError(
                f"the policy was trained on the poses of {_props(trained)}; {task}'s state has those of "
                f"{_props(spec.state_names)}: evaluate it on the task it was trained on"
            )
        check_compatible(req, spec)
        self.runner = ChunkRunner(policy, len(seeds))
        self.runner.reset(list(range(len(seeds))), [int(s) for s in seeds])
        self.shape = (len(seeds), req.state_dim)

    def __call__(self, states: np.ndarray, instructions: list[str]) -> np.ndarray:
        if states.shape != self.shape or len(instructions) != self.shape[0]:
            raise ContractError(
                f"got states of shape {states.shape} and {len(instructions)} instructions; this policy was "
                f"reset for {self.shape[0]} environments of {self.shape[1]}-D states"
            )
        rows = [{"state": s, "instruction": t} for s, t in zip(states, instructions, strict=True)]
        return self.runner.act(rows)


def _props(state_names: Sequence[str]) -> list[str]:
    """The bodies whose poses follow the robot's state (task_state.py names them body_x ... body_qz)."""
    return [name[: -len("_x")] for name in state_names[len(STATE_NAMES) :] if name.endswith("_x")]


@dataclass
class MJXStatesConfig:
    """`python -m polyact.eval.mjx_states`: one episode per seed EVAL_SEED_BASE + 0 .. seeds-1 of `task`,
    all stepped together on MJX, for at most `horizon` control steps (0: the checkpoint's episode length).
    `out`: a JSON file for each seed's success, episode length and instruction (to set beside `polyact
    eval`'s episodes.jsonl, whose seeds are the same)."""

    policy: str = ""
    task: str = "reach_target"
    seeds: int = 16
    split: str = "train"  # variations: "train" as `polyact eval`, "test" as its -novel task sets, or "all"
    horizon: int = 0
    device: str = "cpu"  # where the policy runs; MJX runs on JAX's default device
    out: str = ""

    def __post_init__(self) -> None:
        if not self.policy:
            raise ConfigError("policy=DIR is required: a checkpoint trained with policy.state_only=true")
        if self.split not in SPLITS:
            raise unknown_name("variation split (split)", self.split, SPLITS)
        if self.seeds < 1 or self.horizon < 0:
            raise ConfigError(f"need seeds >= 1 and horizon >= 0, got seeds={self.seeds}, horizon={self.horizon}")


def evaluate_checkpoint(cfg: MJXStatesConfig, make_batch: Callable[[str], Batch]) -> str:
    """`cfg`'s episodes of its checkpoint, stepped together by `make_batch(task)` (main: an MJXBatch),
    summarised in one line: the success rate with its Wilson interval and what the policy observed. The
    policy is checked against the task before the batch is built."""
    from polyact.envs.rlbench_like.mjx.evaluate import evaluate_states
    from polyact.eval.stats import wilson_interval
    from polyact.policies import VLAPolicy

    policy = VLAPolicy.from_pretrained(cfg.policy, map_location=cfg.device)
    seeds = [EVAL_SEED_BASE + i for i in range(cfg.seeds)]
    horizon = cfg.horizon or (policy.env_spec.max_episode_steps if policy.env_spec else DEFAULT_MAX_STEPS)
    batched = BatchedStatePolicy(policy, cfg.task, seeds)
    options = [{"variation_split": cfg.split}] * len(seeds)
    run = evaluate_states(make_batch(cfg.task), batched, seeds, options, horizon, task_state=batched.task_state)
    wins = int(run.success.sum())
    low, high = wilson_interval(wins, len(seeds))
    if cfg.out:
        episodes = {"seed": seeds, "success": run.success.tolist(), "length": run.length.tolist()}
        out = Path(cfg.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out, {"task": cfg.task, "split": cfg.split, **episodes, "instruction": run.instructions})
    return (
        f"{cfg.task}: {wins}/{len(seeds)} = {100 * wins / len(seeds):.1f}% [{100 * low:.1f}, {100 * high:.1f}] "
        f"(Wilson 95%), {cfg.split} variations, seeds {seeds[0]}..{seeds[-1]}, "
        f"{'privileged task state' if batched.task_state else 'robot state only'}, mean length "
        f"{run.length.mean():.0f} of {horizon} steps"
    )


def main(argv: Sequence[str] | None = None) -> None:
    import sys

    from polyact.config import load_config
    from polyact.envs.rlbench_like import TASKS
    from polyact.envs.rlbench_like.mjx.batch import MJXBatch
    from polyact.envs.rlbench_like.mjx.model import SUPPORTED_TASKS

    cfg = load_config(MJXStatesConfig, list(sys.argv[1:] if argv is None else argv))
    if cfg.task not in SUPPORTED_TASKS:
        raise unknown_name("MJX task", cfg.task, SUPPORTED_TASKS)
    start = time.perf_counter()
    line = evaluate_checkpoint(cfg, lambda task: MJXBatch(TASKS[task]()))
    print(f"{line}, {time.perf_counter() - start:.0f} s with the MJX compile")


if __name__ == "__main__":
    main()

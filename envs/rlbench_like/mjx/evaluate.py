"""State-based policies evaluated in batch: N seeds of one task stepped together (MJXBatch), the policy
called once per control step for the whole batch on the CPU env's state vectors and the instructions.

The state vector is the CPU env's observation `state` (arm.py STATE_NAMES: tcp pose, gripper opening,
the seven joint positions), made by the CPU Arm's own `state()` from each environment's row of the
batch's snapshot copied into a CPU MjData (experts.py's view), so a policy reads on MJX what it reads on
the CPU env. With `task_state=True` every prop's pose follows, as `env.task_state=true` appends it
there (task_state.py): the suite's state is otherwise the robot's alone. Episodes end as evaluation
ends them (eval/worker.py): at the first step the task succeeds, or at the horizon. Environments
whose episode has ended hold still (no motion, their last gripper command) until every one has, and
the policy's actions for them are ignored, so the policy always sees the whole batch (static shapes: a
jitted policy compiles once). Actions are clipped to the action bounds, as the CPU env clips them.

A polyact checkpoint is evaluated here through its adapter, eval/mjx_states.py (envs may not import
policies: tests/architecture): a policy trained with `policy.state_only=true` reads the state and the
instruction alone, and `BatchedStatePolicy` runs it for the whole batch through ChunkRunner, as `polyact
eval` runs it on the CPU env; `python -m polyact.eval.mjx_states policy=DIR task=TASK seeds=N` prints
its success rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from polyact.envs.rlbench_like.arm import action_spec
from polyact.envs.rlbench_like.env import DEFAULT_MAX_STEPS
from polyact.envs.rlbench_like.mjx.experts import Batch, PrivilegedView
from polyact.envs.rlbench_like.task_state import TaskState
from polyact.errors import ContractError

# (N, S) float32 states and N instructions -> (N, A) actions of the `default` action mode
StatePolicy = Callable[[np.ndarray, list[str]], np.ndarray]


@dataclass(frozen=True)
class StatePolicyRun:
    """success (N,) bool: the task succeeded at some step; length (N,) int: control steps taken (to the
    first success, else the horizon); each episode's instruction."""

    success: np.ndarray
    length: np.ndarray
    instructions: list[str]


class SnapshotStates:
    """The CPU env's state vectors of a batch, (N, S) float32, from its snapshot (MJXBatch.snapshot);
    with `task_state`, those of `env.task_state=true`."""

    def __init__(self, model: mujoco.MjModel, task_state: bool = False):
        self._view = PrivilegedView(model)
        self._task_state = TaskState(model) if task_state else None

    def __call__(self, snap: dict[str, np.ndarray]) -> np.ndarray:
        rows = []
        for i in range(len(snap["qpos"])):
            self._view.load(snap, i)
            row = self._view.arm.state()  # what RLBenchLikeEnv._proprio returns in the default mode
            if self._task_state is not None:
                row = np.concatenate([row, self._task_state(self._view.data)])
            rows.append(row)
        return np.stack(rows)


def _checked(actions: Any, n: int, dim: int) -> np.ndarray:
    """The policy's actions as float32 (n, dim), or ContractError saying what is wrong with them."""
    arr = np.asarray(actions)
    if arr.shape != (n, dim) or not np.issubdtype(arr.dtype, np.number):
        raise ContractError(
            f"the policy returned {arr.dtype} actions of shape {arr.shape}; expected numbers of shape ({n}, {dim}): "
            "one `default` mode action per environment"
        )
    arr = arr.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ContractError(f"the policy returned non-finite actions for environments {bad.tolist()}")
    return arr


def evaluate_states(
    batch: Batch,
    policy: StatePolicy,
    seeds: Sequence[int],
    options: Sequence[dict[str, Any]] | None = None,
    horizon: int = DEFAULT_MAX_STEPS,
    task_state: bool = False,
) -> StatePolicyRun:
    """One episode of `policy` per seed (options per environment: `variation` or `variation_split`), all
    stepped together by `batch` for at most `horizon` control steps; `task_state`: the states carry the
    props' poses (SnapshotStates)."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 control step, got {horizon}")
    n = len(seeds)
    instructions = batch.reset(seeds, options)
    states = SnapshotStates(batch.model, task_state)
    spec = action_spec("default", None)
    low, high = np.float32(spec.low), np.float32(spec.high)
    success = np.zeros(n, bool)
    length = np.zeros(n, int)
    running = np.ones(n, bool)
    hold = np.zeros((n, spec.dim), np.float32)  # a finished environment's action: its last gripper command
    for _ in range(horizon):
        actions = np.clip(_checked(policy(states(batch.snapshot()), list(instructions)), n, spec.dim), low, high)
        hold[running, -1] = actions[running, -1]
        succeeded = np.asarray(batch.step(np.where(running[:, None], actions, hold)), bool)
        length += running
        success |= running & succeeded
        running &= ~succeeded
        if not running.any():
            break
    return StatePolicyRun(success, length, list(instructions))

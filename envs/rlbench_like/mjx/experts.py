"""The suite's scripted experts for N seeds at once: only physics runs batched (MJXBatch).

Each environment of the batch has its own `ScriptedExpert` (../experts.py), unchanged: its task's script
plans the waypoints (keyframes) on the CPU from that environment's privileged state, read from the
batch after every step, and its minimum-jerk moves give the actions, clipped as on the CPU env. The
actions of all environments go to the batch in one step. An episode ends as `collect.record_episode`
ends one: once the task has succeeded and the script has finished, or at the step limit; environments
whose episode has ended hold still (no motion, their last gripper command) until every one has.

The privileged state is read from the batch's poses (xpos, xmat, site poses), joint positions and
velocities and arm commands (`MJXBatch.snapshot`), which covers the MJX tasks' `privileged`; a task whose
`privileged` read contacts or its props' paint would need those too. The batch shares one Task instance
between its environments, which holds for tasks that keep no episode state in it (the MJX tasks).

    python -m polyact.envs.rlbench_like.mjx.experts --task reach_target --seeds 64 --out trajectories.npz

It prints the seeds solved and, per variation the seeds drew, how many of them the expert solved.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import mujoco
import numpy as np

from polyact.envs.rlbench_like.arm import Arm, action_spec
from polyact.envs.rlbench_like.env import DEFAULT_MAX_STEPS
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.mjx.trajectory import StateTrajectory, prop_poses, save_trajectories
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Task

# The snapshot fields copied into the CPU view: physics state, welded props, the poses Sim and Arm read
_VIEW_FIELDS = ("qpos", "qvel", "mocap_pos", "mocap_quat", "xpos", "xmat", "site_xpos", "site_xmat")


class Batch(Protocol):
    """What the experts need of a batch of N environments of one task (MJXBatch has it)."""

    task: Task
    model: mujoco.MjModel

    def reset(self, seeds: Sequence[int], options: Sequence[dict[str, Any]] | None = None) -> list[str]: ...

    def step(self, actions: np.ndarray) -> Any: ...  # success (N,)

    def snapshot(self) -> dict[str, np.ndarray]: ...


class _BatchedEnv:
    """What ScriptedExpert reads of its env (the task, the action mode, the action bounds), for one
    environment of a batch in the `default` action mode."""

    def __init__(self, task: Task):
        spec = action_spec("default", None)
        self.task_impl = task
        self.arm = SimpleNamespace(mode="default")
        self.action_space = SimpleNamespace(low=np.float32(spec.low), high=np.float32(spec.high))


class PrivilegedView:
    """One CPU MjData of the batch's model into which an environment's snapshot row is copied, read by the
    CPU Arm and the task's `privileged` as the CPU env reads its own (RLBenchLikeEnv._privileged)."""

    def __init__(self, model: mujoco.MjModel):
        self.data = mujoco.MjData(model)
        self.sim = Sim(model, self.data)
        self.arm = Arm(model, self.data, "default")

    def load(self, snap: dict[str, np.ndarray], i: int) -> None:
        for f in _VIEW_FIELDS:
            getattr(self.data, f)[:] = snap[f][i]

    def privileged(self, task: Task, snap: dict[str, np.ndarray], i: int) -> dict[str, Any]:
        self.load(snap, i)
        tcp_pos, tcp_quat = self.arm.tcp_pose()
        return {
            "tcp_pos": tcp_pos,
            "tcp_quat": tcp_quat,
            "target_pos": snap["target_pos"][i].copy(),
            "target_quat": snap["target_quat"][i].copy(),
            "q": self.arm.joint_positions(),
            "q_cmd": snap["q_cmd"][i].copy(),
            "joint_velocities": self.arm.joint_velocities(),
            "gripper_opening": self.arm.gripper_opening(),
            "task": task.privileged(self.sim),
        }


@dataclass(frozen=True)
class ExpertRun:
    """The experts' episodes: success (N,), and each one's states for the replay-render path (replay.py)."""

    success: np.ndarray
    trajectories: list[StateTrajectory]


def run_experts(
    batch: Batch,
    seeds: Sequence[int],
    options: Sequence[dict[str, Any]] | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> ExpertRun:
    """One expert episode per seed (options per environment: `variation` or `variation_split`, default
    the train split), all stepped together by `batch`."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    options = [dict(o) for o in options] if options is not None else [{"variation_split": "train"} for _ in seeds]
    n = len(seeds)
    instructions = batch.reset(seeds, options)
    experts = [ScriptedExpert(_BatchedEnv(batch.task)) for _ in range(n)]
    view = PrivilegedView(batch.model)
    snap = batch.snapshot()
    props = []
    for i in range(n):
        view.load(snap, i)
        props.append(prop_poses(batch.model, view.data))
    states = [[(snap["qpos"][i], snap["qvel"][i])] for i in range(n)]
    actions: list[list[np.ndarray]] = [[] for _ in range(n)]
    successes: list[list[bool]] = [[] for _ in range(n)]
    running = np.ones(n, bool)
    hold = np.zeros((n, action_spec("default", None).dim), np.float32)
    while running.any():
        step_actions = hold.copy()
        for i in np.flatnonzero(running):
            info = {"privileged": view.privileged(batch.task, snap, i)}
            step_actions[i] = experts[i].act({}, info)
            hold[i, -1] = step_actions[i, -1]  # a finished environment keeps its last gripper command
        success = np.asarray(batch.step(step_actions))
        snap = batch.snapshot()
        for i in np.flatnonzero(running):
            actions[i].append(step_actions[i])
            successes[i].append(bool(success[i]))
            states[i].append((snap["qpos"][i], snap["qvel"][i]))
            done = any(successes[i]) and experts[i].finished
            running[i] = not done and len(actions[i]) < max_steps
    trajectories = [
        StateTrajectory(
            task=batch.task.name,
            seed=int(seeds[i]),
            options=options[i],
            instruction=instructions[i],
            qpos=np.array([s[0] for s in states[i]]),
            qvel=np.array([s[1] for s in states[i]]),
            actions=np.array(actions[i]),
            successes=np.array(successes[i]),
            props=props[i][0],
            prop_poses=props[i][1],
        )
        for i in range(n)
    ]
    return ExpertRun(np.array([t.success for t in trajectories]), trajectories)


def solved_by_variation(variations: Sequence[int], success: Sequence[bool]) -> dict[int, tuple[int, int]]:
    """{variation index: (seeds solved, seeds drawn)}, in index order: a variation no seed solved is
    one the expert cannot do (or no seed drew it, then it is absent)."""
    tally: dict[int, tuple[int, int]] = {}
    for variation, ok in zip(variations, success, strict=True):
        solved, drawn = tally.get(int(variation), (0, 0))
        tally[int(variation)] = (solved + bool(ok), drawn + 1)
    return dict(sorted(tally.items()))


def main() -> None:
    from polyact.envs.rlbench_like import TASKS
    from polyact.envs.rlbench_like.mjx.batch import MJXBatch
    from polyact.envs.rlbench_like.mjx.model import SUPPORTED_TASKS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=SUPPORTED_TASKS)
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0 .. N-1, one environment each")
    parser.add_argument("--split", default="train", choices=["train", "test", "all"])
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS)
    parser.add_argument("--out", default="", help="save the trajectories here (.npz), for replay.py")
    args = parser.parse_args()
    start = time.perf_counter()
    batch = MJXBatch(TASKS[args.task]())
    options = [{"variation_split": args.split}] * args.seeds
    run = run_experts(batch, range(args.seeds), options, args.max_steps)
    steps = max(len(t.actions) for t in run.trajectories)
    print(
        f"{args.task}: {int(run.success.sum())}/{args.seeds} seeds succeeded ({args.split} variations), "
        f"{steps} batched steps, {time.perf_counter() - start:.0f} s with the compile"
    )
    drawn = [batch.layout(seed, o)[0].index for seed, o in zip(range(args.seeds), options, strict=True)]
    tally = solved_by_variation(drawn, run.success)
    print("variation (solved/drawn): " + ", ".join(f"{v} {ok}/{n}" for v, (ok, n) in tally.items()))
    if args.out:
        save_trajectories(args.out, run.trajectories)
        print(f"trajectories in {args.out}")


if __name__ == "__main__":
    main()

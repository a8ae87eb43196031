"""The replay-render path: state trajectories (trajectory.py; from MJX, or from the CPU env) rendered by the
CPU backend into the observations a direct CPU collection records, in parallel worker processes.

Per episode, the task's own reset rebuilds the seed's scene on a CPU env (layout, colours, hidden props,
instruction), the welded props are checked against the trajectory's, and each recorded state is set and
rendered by the env's own observation code (cameras, depth, intrinsics, extrinsics, state vector).

Why each state is rendered one physics step back: MuJoCo's step computes positions (body, site and camera
poses) before it integrates, so the data a control step leaves holds the new qpos beside the poses of the
qpos one physics step earlier, and the CPU env renders and reads its tcp pose from those. The replay
undoes the last integration (`mj_integratePos` with -dt: the implicitfast integrator moves positions by
the new qvel, so this recovers them to rounding), computes the poses there, then puts the recorded qpos
back for the state vector's joint and gripper entries, as the CPU env reads them. Rendered at the
recorded qpos instead, reach_target's frames differ from the direct ones (the tcp by about 1 mm, edge
pixels flip); with the step back they are equal bit for bit (tests/envs/test_mjx_replay.py).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import mujoco
import numpy as np

from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.mjx.trajectory import StateTrajectory, prop_poses
from polyact.envs.rlbench_like.tasks.base import Task
from polyact.errors import ConfigError

PROP_TOLERANCE = 1e-9  # m and quaternion units: the rebuilt scene's welded props against the trajectory's


class ReplayEnv(RLBenchLikeEnv):
    """The CPU env of one task whose episodes are recorded states instead of physics."""

    def __init__(self, task: Task, cfg: EnvConfig):
        if cfg.action_mode == "keyframe":
            raise ConfigError(
                "replay renders the default and joint_position modes' observations; the keyframe mode's state "
                "counts keyframe actions, which a state trajectory does not hold"
            )
        super().__init__(task, cfg)

    def replay(self, trajectory: StateTrajectory) -> dict[str, np.ndarray]:
        """The observations before each of the trajectory's T actions, as `collect.record_episode` stores
        them: {rgb/<cam> (T, H, W, 3), depth/<cam>, intrinsics/<cam>, extrinsics/<cam>, state (T, S)}.
        Afterwards `contact_history` holds the finger contact at each of those T states, where the suite's
        `annotate` reads it as it reads a recording env's."""
        self._rebuild_scene(trajectory)
        self.contact_history = []
        frames = [self._show(q, v) for q, v in zip(trajectory.qpos[:-1], trajectory.qvel[:-1], strict=True)]
        return {k: np.stack([f[k] for f in frames]) for k in frames[0] if k != "instruction"}

    def _rebuild_scene(self, trajectory: StateTrajectory) -> None:
        where = f"{trajectory.task} seed {trajectory.seed} (options {trajectory.options})"
        if trajectory.task != self.task:
            raise ConfigError(f"a {self.task} replay env cannot replay {where}")
        if trajectory.qpos.shape[1] != self.model.nq or trajectory.qvel.shape[1] != self.model.nv:
            raise ConfigError(
                f"{where}: states of nq={trajectory.qpos.shape[1]}, nv={trajectory.qvel.shape[1]}; this scene has "
                f"nq={self.model.nq}, nv={self.model.nv}"
            )
        self.instruction = self._reset_sim(trajectory.seed, dict(trajectory.options))
        self._steps = 0
        if self.instruction != trajectory.instruction:
            raise ConfigError(
                f"{where}: the reset gives the instruction {self.instruction!r}, the trajectory has "
                f"{trajectory.instruction!r}: it was recorded from another layout (other options or task code)"
            )
        if not trajectory.props:  # recorded without them: the instruction is the only check
            return
        names, poses = prop_poses(self.model, self.data)
        if names != trajectory.props:
            raise ConfigError(f"{where}: the trajectory's welded props {trajectory.props} are not this scene's {names}")
        err = np.abs(poses - trajectory.prop_poses).max(axis=1)
        if err.max() > PROP_TOLERANCE:
            worst = int(err.argmax())
            raise ConfigError(
                f"{where}: the reset puts {names[worst]} at {poses[worst].round(4).tolist()}, the trajectory "
                f"has {trajectory.prop_poses[worst].round(4).tolist()}: it was recorded from another layout"
            )

    def _show(self, qpos: np.ndarray, qvel: np.ndarray) -> dict[str, Any]:
        """The observation the CPU env makes at this state (see the module doc for the step back)."""
        self.data.qvel[:] = qvel
        self.data.qpos[:] = qpos
        mujoco.mj_integratePos(self.model, self.data.qpos, self.data.qvel, -self.model.opt.timestep)
        mujoco.mj_forward(self.model, self.data)  # contacts too: those the step found where the CPU env did
        self.contact_history.append(self.finger_contact())
        self.data.qpos[:] = qpos
        return self._observation()


# One replay env per task (and env config) for a worker process's lifetime, as collect.py keeps its
# recording envs: building one compiles the scene and opens a GL context.
_WORKER_ENVS: dict[str, tuple[EnvConfig, ReplayEnv]] = {}


def worker_replay_env(task: str, cfg: EnvConfig) -> ReplayEnv:
    """This process's replay env for `task` and `cfg` (built on first use, kept for the next episode)."""
    from polyact.envs.rlbench_like import TASKS

    kept = _WORKER_ENVS.get(task)
    if kept is None or kept[0] != cfg:
        if kept is not None:
            kept[1].close()
        _WORKER_ENVS[task] = kept = (cfg, ReplayEnv(TASKS[task](), cfg))
    return kept[1]


def replay_in_worker(trajectory: StateTrajectory, cfg: EnvConfig) -> dict[str, np.ndarray]:
    """`ReplayEnv.replay` with this process's env for the trajectory's task."""
    return worker_replay_env(trajectory.task, cfg).replay(trajectory)


def replay_trajectories(
    trajectories: Iterable[StateTrajectory], cfg: EnvConfig, workers: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Each trajectory's observations (`ReplayEnv.replay`), in order, rendered by `workers` worker processes
    (0: one per core). Workers are spawned, as collect.py's and vector.py's, so each has its own EGL context;
    at most 2 x workers episodes are in flight, so a long list never holds all its frames in memory."""
    if workers < 0:
        raise ConfigError(f"workers must be >= 0 (0 = one per CPU core), got {workers}")
    workers = workers or os.cpu_count() or 1
    pending: deque[Future] = deque()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for trajectory in trajectories:
            pending.append(pool.submit(replay_in_worker, trajectory, cfg))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

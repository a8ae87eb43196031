"""The task's low-dimensional state, as RLBench's `task_low_dim_state`: the pose of every body the task
adds to the scene, appended to the `state` vector when `env.task_state=true`.

The suite's own state is the robot's alone (every target is seen or named), so a policy that reads no
camera cannot know where the props are; with this it can, as RLBench's and Meta-World's state-based
baselines do. It is privileged: evaluation tables say so (eval/config.py).

Every body outside the shared scene (the robot, the table) is listed in model order, sub-bodies too
(a drawer's pose tells how far it is open), each as position (m, world frame) and orientation
(unit quaternion w, x, y, z with w >= 0). The list is fixed by the task's model, so a task has one
size of state whatever the variation; tasks with other props have other sizes.
"""

from __future__ import annotations

import mujoco
import numpy as np

from polyact.envs.rlbench_like.rotations import mat_to_quat

SCENE_ROOTS = ("world", "table", "link0")  # robot.xml's top-level bodies: not the task's
POSE_FIELDS = ("x", "y", "z", "qw", "qx", "qy", "qz")


class TaskState:
    """The poses of a task model's prop bodies, read from any MjData of that model (the CPU env's, or
    the MJX batch's snapshot copied into one: mjx/evaluate.py)."""

    def __init__(self, model: mujoco.MjModel):
        scene = {model.body(name).id for name in SCENE_ROOTS}
        self.bodies = np.array([b for b in range(model.nbody) if int(model.body_rootid[b]) not in scene], int)
        self.names = tuple(f"{model.body(int(b)).name}_{f}" for b in self.bodies for f in POSE_FIELDS)

    def __call__(self, data: mujoco.MjData) -> np.ndarray:
        poses = [np.concatenate([data.xpos[b], mat_to_quat(data.xmat[b])]) for b in self.bodies]
        return np.concatenate(poses).astype(np.float32)

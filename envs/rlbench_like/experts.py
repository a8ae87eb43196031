"""The scripted expert: runs a task's waypoint script with minimum-jerk moves in the env's action space.

A task's `script` is a generator of Waypoints that reads the privileged state each time it is asked
for the next one, so later waypoints are planned from where objects actually are (after a grasp, a
drawer pull, a push). Each move is a minimum-jerk interpolation of position (and a slerp of yaw) from
the commanded tcp pose, ending at rest, followed by `dwell` still steps, so every waypoint is a pause
that the keyframe heuristic finds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polyact.envs.rlbench_like.arm import CONTROL_HZ
from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.rotations import (
    quat_conj,
    quat_mul,
    quat_to_euler,
    quat_to_rotvec,
    slerp,
)
from polyact.envs.rlbench_like.tasks.base import OPEN, Waypoint

ANGULAR_SPEED = 1.5  # rad/s, mean over a move


def min_jerk(tau: float) -> float:
    """Minimum-jerk progress from 0 to 1 with zero velocity and acceleration at both ends."""
    return tau**3 * (10 - 15 * tau + 6 * tau**2)


class _Move:
    def __init__(self, wp: Waypoint, start_pos: np.ndarray, start_quat: np.ndarray):
        self.wp, self.start_pos, self.start_quat = wp, start_pos, start_quat
        dt = 1.0 / CONTROL_HZ
        dist = float(np.linalg.norm(wp.pos - start_pos))
        angle = float(np.linalg.norm(quat_to_rotvec(quat_mul(wp.quat, quat_conj(start_quat)))))
        self.steps = max(wp.min_steps, int(np.ceil(dist / (wp.speed * dt))), int(np.ceil(angle / (ANGULAR_SPEED * dt))))
        self.k = 0

    def next_pose(self) -> tuple[np.ndarray, np.ndarray]:
        self.k += 1
        s = min_jerk(min(self.k / self.steps, 1.0))
        return self.start_pos + s * (self.wp.pos - self.start_pos), slerp(self.start_quat, self.wp.quat, s)

    @property
    def done(self) -> bool:
        return self.k >= self.steps + self.wp.dwell


class ScriptedExpert:
    """`reset()` then `act(obs, info)` each step; reads only `info["privileged"]` (and the arm's IK in
    joint-position mode). After the script ends it holds still with its last gripper command."""

    def __init__(self, env: RLBenchLikeEnv):
        self.env = env
        self.reset()

    def reset(self) -> None:
        self._script = None
        self._move: _Move | None = None
        self._priv: dict[str, Any] = {}
        self._gripper = OPEN
        self.finished = False

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        self._priv = info["privileged"]
        if self._script is None:
            self._script = self.env.task_impl.script(lambda: self._priv)
        while not self.finished and (self._move is None or self._move.done):
            wp = next(self._script, None)
            if wp is None:
                self.finished = True
                break
            start = (self._priv["target_pos"], self._priv["target_quat"])
            if self._move is not None:  # chain from the planned pose, not from a lagging re-anchor
                start = (self._move.wp.pos, self._move.wp.quat)
            self._move = _Move(wp, np.asarray(start[0], float), np.asarray(start[1], float))
            self._gripper = wp.gripper
        if self.finished or self._move is None:
            pos, quat = self._priv["target_pos"], self._priv["target_quat"]
        else:
            pos, quat = self._move.next_pose()
        return self._action(pos, quat)

    def _action(self, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
        if self.env.arm.mode == "joint_position":
            q = self.env.arm.ik.solve(pos, quat, self._priv["q_cmd"]).q
            return np.concatenate([q, [self._gripper]]).astype(np.float32)
        dpos = pos - self._priv["target_pos"]
        drot = quat_to_euler(quat_mul(quat, quat_conj(self._priv["target_quat"])))
        action = np.concatenate([dpos, drot, [self._gripper]])
        low, high = self.env.action_space.low, self.env.action_space.high
        return np.clip(action, low, high).astype(np.float32)

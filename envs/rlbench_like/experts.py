"""The scripted expert: runs a task's waypoint script with minimum-jerk moves in the env's action space.

A task's `script` is a generator of Waypoints that reads the privileged state each time it is asked
for the next one, so later waypoints are planned from where objects actually are (after a grasp, a
drawer pull, a push). Each move is a minimum-jerk interpolation of position (and a slerp of yaw) from
the commanded tcp pose, followed by `dwell` still steps and then as many as the arm needs to come to
rest (every joint slower than the keyframe heuristic's threshold, at most MAX_REST_STEPS more), so
every waypoint is a pause that the keyframe heuristic finds.

In the keyframe action mode each waypoint is one action (its pose, then its gripper command: RLBench's
move-then-gripper order), executed by motion.py at its one speed instead of the waypoint's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.keyframes import STOPPING_DELTA
from polyact.envs.rlbench_like.motion import min_jerk, move_steps, pose_action
from polyact.envs.rlbench_like.rotations import quat_conj, quat_mul, quat_to_euler, slerp
from polyact.envs.rlbench_like.tasks.base import OPEN, Waypoint

MAX_REST_STEPS = 10
REST_SPEED = 0.5 * STOPPING_DELTA  # rad/s: margin under the threshold, which finite differences blur


class _Move:
    def __init__(self, wp: Waypoint, start_pos: np.ndarray, start_quat: np.ndarray):
        self.wp, self.start_pos, self.start_quat = wp, start_pos, start_quat
        self.steps = max(wp.min_steps, move_steps(start_pos, start_quat, wp.pos, wp.quat, wp.speed))
        self.k = 0

    def next_pose(self) -> tuple[np.ndarray, np.ndarray]:
        self.k += 1
        s = min_jerk(min(self.k / self.steps, 1.0))
        return self.start_pos + s * (self.wp.pos - self.start_pos), slerp(self.start_quat, self.wp.quat, s)

    def done(self, joint_velocities: np.ndarray) -> bool:
        if self.k < self.steps + self.wp.dwell:
            return False
        return (
            bool(np.all(np.abs(joint_velocities) <= REST_SPEED))
            or self.k >= self.steps + self.wp.dwell + MAX_REST_STEPS
        )


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
        if self.env.arm.mode == "keyframe":
            return self._keyframe()
        while not self.finished and (self._move is None or self._move.done(self._priv["joint_velocities"])):
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

    def _keyframe(self) -> np.ndarray:
        wp = None if self.finished else next(self._script, None)
        if wp is None:  # the script is done: stay where the arm is
            self.finished = True
            return pose_action(self._priv["target_pos"], self._priv["target_quat"], self._gripper)
        self._gripper = wp.gripper
        return pose_action(wp.pos, wp.quat, wp.gripper)

    def _action(self, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
        if self.env.arm.mode == "joint_position":
            q = self.env.arm.ik.solve(pos, quat, self._priv["q_cmd"]).q
            return np.concatenate([q, [self._gripper]]).astype(np.float32)
        dpos = pos - self._priv["target_pos"]
        drot = quat_to_euler(quat_mul(quat, quat_conj(self._priv["target_quat"])))
        action = np.concatenate([dpos, drot, [self._gripper]])
        low, high = self.env.action_space.low, self.env.action_space.high
        return np.clip(action, low, high).astype(np.float32)

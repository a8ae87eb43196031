"""Keyframe actions: move the arm to an absolute tcp pose over many control steps, then set the gripper.

This is what RLBench's `MoveArmThenGripper(EndEffectorPoseViaPlanning(), Discrete())` does for PerAct,
RVT and 3D Diffuser Actor: the policy names the next keyframe pose and a planner gets there. Here the
"planner" is a minimum-jerk path from the commanded pose to the target (position interpolated, the
orientation slerped) tracked through the arm's inverse kinematics, so the path is straight in space:
it does not plan around obstacles. What stands in for collision awareness is that the arm is
position-servoed with limited force, the commanded pose is kept on a leash to the measured one (arm.py),
and the outcome says when the pose was not reached, so a blocked move is visible rather than silent.
As in RLBench, success is checked after every control step of the move and the move stops on success.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from polyact.envs.rlbench_like.arm import CONTROL_HZ, Arm
from polyact.envs.rlbench_like.keyframes import STOPPING_DELTA
from polyact.envs.rlbench_like.rotations import euler_to_quat, quat_conj, quat_mul, quat_to_euler, quat_to_rotvec, slerp

KEYFRAME_EPISODE_STEPS = 25  # PerAct's, RVT's and 3D Diffuser Actor's limit on keyframe actions per episode
LINEAR_SPEED = 0.25  # m/s, mean over a move (the peak is 1.875 times this)
ANGULAR_SPEED = 1.5  # rad/s, mean over a move
MIN_MOVE_STEPS = 4
MAX_SETTLE_STEPS = 20  # control steps allowed for the arm to come to rest at the target
GRIP_STEPS = 8  # control steps for the fingers to close or open (0.4 s)
REACHED_POS = 0.01  # m: the measured tcp within this of the target counts as reached
REACHED_ROT = 0.1  # rad


def min_jerk(tau: float) -> float:
    """Minimum-jerk progress from 0 to 1 with zero velocity and acceleration at both ends."""
    return tau**3 * (10 - 15 * tau + 6 * tau**2)


def move_steps(start_pos: np.ndarray, start_quat: np.ndarray, pos: np.ndarray, quat: np.ndarray, speed: float) -> int:
    """Control steps for a move at mean linear `speed` (m/s) and at most ANGULAR_SPEED."""
    dt = 1.0 / CONTROL_HZ
    dist = float(np.linalg.norm(np.asarray(pos) - start_pos))
    angle = float(np.linalg.norm(quat_to_rotvec(quat_mul(quat, quat_conj(start_quat)))))
    return max(MIN_MOVE_STEPS, int(np.ceil(dist / (speed * dt))), int(np.ceil(angle / (ANGULAR_SPEED * dt))))


def pose_action(pos: np.ndarray, quat: np.ndarray, gripper: float) -> np.ndarray:
    """A keyframe action (7,) float32 from a tcp pose and a gripper command."""
    return np.concatenate([np.asarray(pos, np.float64), quat_to_euler(quat), [gripper]]).astype(np.float32)


def action_pose(action: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(position, quaternion, gripper command: +1 closed or -1 open) of a keyframe action."""
    action = np.asarray(action, np.float64)
    return action[:3], euler_to_quat(action[3:6]), 1.0 if action[6] > 0 else -1.0


@dataclass(frozen=True)
class KeyframeOutcome:
    """What executing one keyframe action did; the env puts it in `info["keyframe"]`."""

    reached: bool  # the measured tcp ended within REACHED_POS and REACHED_ROT of the target
    reachable: bool  # inverse kinematics found joint positions within limits for the target pose
    pos_error: float  # m, measured tcp to target after the move
    rot_error: float  # rad
    control_steps: int  # 20 Hz steps the move, settle and gripper took
    stopped_on_success: bool  # the task succeeded during the move, which was cut short there

    def as_info(self) -> dict[str, Any]:
        return asdict(self)


def execute_keyframe(arm: Arm, action: np.ndarray, after_step: Callable[[], bool]) -> KeyframeOutcome:
    """Move to the keyframe pose of `action`, settle, then apply its gripper command.

    `after_step()` runs after every control step (the task's bookkeeping) and returns the task's success;
    a true return ends the keyframe there, as RLBench ends a planned path on success."""
    pos, quat, gripper = action_pose(action)
    reachable = arm.ik.solve(pos, quat, arm.q_cmd, max_iters=100).converged
    start_pos, start_quat = arm.target_pos.copy(), arm.target_quat.copy()
    holding = arm.gripper_command

    def outcome(steps: int, stopped: bool) -> KeyframeOutcome:
        tcp_pos, tcp_quat = arm.tcp_pose()
        pos_error = float(np.linalg.norm(tcp_pos - pos))
        rot_error = float(np.linalg.norm(quat_to_rotvec(quat_mul(quat, quat_conj(tcp_quat)))))
        reached = pos_error <= REACHED_POS and rot_error <= REACHED_ROT
        return KeyframeOutcome(reached, reachable, pos_error, rot_error, steps, stopped)

    def commands() -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
        """The commanded pose and gripper of each control step: the move, the settle, the gripper."""
        n = move_steps(start_pos, start_quat, pos, quat, LINEAR_SPEED)
        for k in range(1, n + 1):
            s = min_jerk(k / n)
            yield start_pos + s * (pos - start_pos), slerp(start_quat, quat, s), holding
        for _ in range(MAX_SETTLE_STEPS):  # at rest = every joint slower than PerAct's keyframe threshold
            if np.all(np.abs(arm.joint_velocities()) <= STOPPING_DELTA):
                break
            yield pos, quat, holding
        if gripper != holding:
            for _ in range(GRIP_STEPS):
                yield pos, quat, gripper

    steps = 0
    for steps, command in enumerate(commands(), start=1):
        arm.step_to_pose(*command)
        if after_step():
            return outcome(steps, stopped=True)
    return outcome(steps, stopped=False)

"""The arm's two action modes, its proprioception, and one control step of physics.

`default` (end-effector delta pose, 7-D): [dx, dy, dz] metres and [droll, dpitch, dyaw] radians per
control step, applied to the commanded tool-centre-point (tcp) pose, not the measured one, so a
stream of deltas is tracked without drift (Meta-World's mocap does the same); rotations are extrinsic
(about world axes) and pre-multiply the commanded orientation. IK turns the commanded pose into joint
targets. The commanded position is kept inside the workspace box and within LEASH metres of the
measured tcp, and re-anchored to what IK achieved when a pose is out of reach or the joints would have to move
faster than MAX_JOINT_STEP per step, so a policy that pushes into the table or past the robot's reach
cannot wind up a large hidden error or make the arm jump.

`joint_position` (8-D): absolute targets for the seven joints (radians, within the joint limits).

`keyframe` (7-D): an absolute tcp pose [x, y, z] metres and [roll, pitch, yaw] radians (extrinsic, the
same frame as the state's quaternion: zero = pointing straight down), reached over many control steps
by motion.py (PerAct's next-keyframe action, RLBench's `EndEffectorPoseViaPlanning`).

All end with the gripper command g in [-1, 1]: -1 fully open (8 cm between the fingers), +1 closed
(squeezing whatever is between the fingers with up to 25 N); in between is a proportional opening.
"""

from __future__ import annotations

import mujoco
import numpy as np

from polyact.contract import ActionSpec
from polyact.envs.rlbench_like.ik import ArmIK
from polyact.envs.rlbench_like.rotations import canonical, euler_to_quat, mat_to_quat, quat_mul
from polyact.envs.rlbench_like.scene import ARM_JOINTS, HOME_QPOS
from polyact.errors import unknown_name

CONTROL_HZ = 20.0  # as RLBench (dt = 0.05 s)
PHYSICS_DT = 0.002
SUBSTEPS = round(1.0 / (CONTROL_HZ * PHYSICS_DT))
MAX_DPOS = 0.05  # m per step (1 m/s)
MAX_DROT = 0.2  # rad per step (4 rad/s)
FINGER_TRAVEL = 0.04  # m per finger
LEASH = 0.1  # m: the commanded tcp never leads the measured one by more
MAX_JOINT_STEP = 0.15  # rad per control step (3 rad/s): how far IK may move the joint targets at once
WORKSPACE_LOW = np.array([0.1, -0.5, 0.005])
WORKSPACE_HIGH = np.array([0.85, 0.5, 0.7])
ACTION_MODES = ("default", "joint_position", "keyframe")

STATE_NAMES = (
    "ee_x", "ee_y", "ee_z", "ee_qw", "ee_qx", "ee_qy", "ee_qz", "gripper_opening",
    *(f"joint_{i}" for i in range(1, 8)),
)  # fmt: skip

# In the keyframe mode the state also counts the keyframe actions executed so far, as PerAct's
# low-dimensional state carries the episode's time step: without it, "about to grasp the second block"
# and "about to grasp the third" can look the same.
KEYFRAME_STATE_NAMES = (*STATE_NAMES, "keyframes_done")

_GRIPPER_TEXT = (
    "gripper: -1 = fully open (8 cm between the fingers), +1 = closed (up to 25 N of grip), "
    "linear in between; the command holds until the next step."
)


def action_spec(mode: str, model: mujoco.MjModel | None) -> ActionSpec:
    """The action contract of `mode`; `model` gives the joint limits (needed only for joint_position)."""
    if mode == "default":
        return ActionSpec(
            names=("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"),
            low=(-MAX_DPOS,) * 3 + (-MAX_DROT,) * 3 + (-1.0,),
            high=(MAX_DPOS,) * 3 + (MAX_DROT,) * 3 + (1.0,),
            semantics=(
                f"End-effector delta pose per control step ({CONTROL_HZ:g} Hz), executed through inverse "
                "kinematics: dx, dy, dz in metres in the world frame (z up; |d| <= "
                f"{MAX_DPOS}); droll, dpitch, dyaw in radians (|d| <= {MAX_DROT}), an extrinsic rotation about "
                "the world x, y, z axes applied to the commanded tool-centre-point orientation, whose frame equals "
                "the world frame when the gripper points straight down with its fingers along world y; " + _GRIPPER_TEXT
            ),
        )
    if mode == "joint_position":
        if model is None:
            raise ValueError("the joint_position action spec needs the model: its joint limits bound the actions")
        ids = [model.joint(j).id for j in ARM_JOINTS]
        return ActionSpec(
            names=(*(f"joint_{i}" for i in range(1, 8)), "gripper"),
            low=(*(float(x) for x in model.jnt_range[ids, 0]), -1.0),
            high=(*(float(x) for x in model.jnt_range[ids, 1]), 1.0),
            semantics=(
                f"Absolute joint position targets in radians for the seven arm joints, base to wrist, per "
                f"control step ({CONTROL_HZ:g} Hz), reached by joint position servos; " + _GRIPPER_TEXT
            ),
        )
    if mode == "keyframe":
        return ActionSpec(
            names=("x", "y", "z", "roll", "pitch", "yaw", "gripper"),
            low=(*(float(x) for x in WORKSPACE_LOW), -np.pi, -np.pi / 2, -np.pi, -1.0),
            high=(*(float(x) for x in WORKSPACE_HIGH), np.pi, np.pi / 2, np.pi, 1.0),
            semantics=(
                "The next keyframe: an absolute tool-centre-point pose that the environment moves to over as "
                "many 20 Hz control steps as it takes (a minimum-jerk path through inverse kinematics, then a "
                "settle), then the gripper command: x, y, z in metres (world frame); roll, pitch, yaw in "
                "radians, extrinsic about the world x, y, z axes from the pointing-down orientation (the "
                "state's quaternion as Euler angles); gripper > 0 closes (up to 25 N), <= 0 opens. "
                "info['keyframe'] reports whether the pose was reached."
            ),
        )
    raise unknown_name("action mode", mode, ACTION_MODES)


class Arm:
    """Turns actions into servo targets and steps the physics; reads the robot's proprioception."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, mode: str):
        if mode not in ACTION_MODES:
            raise unknown_name("action mode", mode, ACTION_MODES)
        self.model, self.data, self.mode = model, data, mode
        self.ik = ArmIK(model, ARM_JOINTS, "tcp", HOME_QPOS)
        self._qadr = np.array([model.joint(j).qposadr[0] for j in ARM_JOINTS])
        self._dofadr = np.array([model.joint(j).dofadr[0] for j in ARM_JOINTS])
        self._fingers = np.array([model.joint(j).qposadr[0] for j in ("finger_left", "finger_right")])
        self._arm_act = np.array([model.actuator(f"act{i}").id for i in range(1, 8)])
        self._grip_act = model.actuator("gripper").id
        self._tcp = model.site("tcp").id
        self.q_cmd = HOME_QPOS.copy()
        self.target_pos, self.target_quat = self.ik.fk(HOME_QPOS)
        self.gripper_command = -1.0

    def reset(self) -> None:
        """Put the robot at home, open, at rest (the caller has reset the MjData)."""
        self.data.qpos[self._qadr] = HOME_QPOS
        self.data.qpos[self._fingers] = FINGER_TRAVEL
        self.data.ctrl[self._arm_act] = HOME_QPOS
        self.data.ctrl[self._grip_act] = FINGER_TRAVEL
        self.q_cmd = HOME_QPOS.copy()
        self.target_pos, self.target_quat = self.ik.fk(HOME_QPOS)
        self.gripper_command = -1.0

    def step(self, action: np.ndarray) -> None:
        """One control step of the default or joint_position mode (keyframe actions go through motion.py,
        which calls `step_to_pose` once per control step)."""
        if self.mode == "default":
            pos = self.target_pos + action[:3]
            quat = canonical(quat_mul(euler_to_quat(action[3:6]), self.target_quat))
            self.step_to_pose(pos, quat, float(action[-1]))
        else:
            q_new = np.clip(action[:7].astype(np.float64), self.ik.lower, self.ik.upper)
            self.target_pos, self.target_quat = self.ik.fk(q_new)
            self._servo(q_new, float(action[-1]))

    def step_to_pose(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> None:
        """One control step toward an absolute commanded tcp pose (kept reachable, see the module doc)."""
        self._servo(self._pose_targets(np.asarray(pos, np.float64), np.asarray(quat, np.float64)), gripper)

    def _servo(self, q_new: np.ndarray, gripper: float) -> None:
        """New joint and gripper servo targets, then SUBSTEPS physics steps."""
        self.gripper_command = gripper
        self.data.ctrl[self._grip_act] = FINGER_TRAVEL * (1.0 - gripper) / 2.0
        q_old, self.q_cmd = self.q_cmd, q_new
        # Ramp the servo targets over the step: a smooth command instead of a jump every 50 ms.
        for k in range(1, SUBSTEPS + 1):
            self.data.ctrl[self._arm_act] = q_old + (q_new - q_old) * (k / SUBSTEPS)
            mujoco.mj_step(self.model, self.data)

    def _pose_targets(self, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
        tcp = self.data.site_xpos[self._tcp]
        pos = np.clip(pos, WORKSPACE_LOW, WORKSPACE_HIGH)
        lead = pos - tcp
        if np.linalg.norm(lead) > LEASH:
            pos = tcp + lead * (LEASH / np.linalg.norm(lead))
        quat = canonical(quat)
        result = self.ik.solve(pos, quat, self.q_cmd, max_iters=20)
        q = result.q
        step = np.max(np.abs(q - self.q_cmd))
        if step > MAX_JOINT_STEP:  # a far jump (a singularity, another IK branch): go there slowly
            q = self.q_cmd + (q - self.q_cmd) * (MAX_JOINT_STEP / step)
        if result.converged and step <= MAX_JOINT_STEP:
            self.target_pos, self.target_quat = pos, quat
        else:  # out of reach or rate-limited: command what the arm can do, not what it cannot
            self.target_pos, self.target_quat = self.ik.fk(q)
        return q

    # --- proprioception ------------------------------------------------------------------------
    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.site_xpos[self._tcp].copy(), mat_to_quat(self.data.site_xmat[self._tcp])

    def gripper_opening(self) -> float:
        """Distance between the fingers as a fraction of the widest (0 closed, 1 open), as Meta-World's."""
        return float(self.data.qpos[self._fingers].sum() / (2 * FINGER_TRAVEL))

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._dofadr].copy()

    def state(self) -> np.ndarray:
        pos, quat = self.tcp_pose()
        return np.concatenate([pos, quat, [self.gripper_opening()], self.joint_positions()]).astype(np.float32)

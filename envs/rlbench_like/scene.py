"""The MJCF of one task: the shared robot scene (assets/robot.xml), the four fixed cameras, and the
task's props, compiled into one MjModel.

Cameras follow RLBench's rig: `front` faces the robot across the table, `left_shoulder` and
`right_shoulder` look over the robot's shoulders, `overhead` looks down on the workspace, and `wrist`
rides on the hand (defined in robot.xml so it moves with it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mujoco
import numpy as np

from polyact.envs.rlbench_like.rotations import mat_to_quat

ROBOT_XML = Path(__file__).parent / "assets" / "robot.xml"
CAMERAS = ("front", "left_shoulder", "right_shoulder", "wrist", "overhead")
ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
# The arm's rest posture: tcp at (0.46, 0, 0.41), pointing down, fingers along the world y axis.
HOME_QPOS = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, np.pi / 4])

# name: (position, look-at point, vertical field of view in degrees)
_FIXED_CAMERAS = {
    "front": ((1.2, 0.0, 0.58), (0.45, 0.0, 0.08), 42.0),
    "left_shoulder": ((0.05, 0.55, 0.62), (0.52, -0.02, 0.02), 50.0),
    "right_shoulder": ((0.05, -0.55, 0.62), (0.52, 0.02, 0.02), 50.0),
    "overhead": ((0.62, 0.0, 1.05), (0.5, 0.0, 0.0), 45.0),
}


def look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Orientation of a MuJoCo camera (looking down its -z, y up) at `pos` looking at `target`."""
    forward = np.asarray(target, dtype=np.float64) - np.asarray(pos, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return mat_to_quat(np.column_stack([right, up, -forward]))


def build_model(add_props: Callable[[mujoco.MjSpec], None]) -> mujoco.MjModel:
    """Compile the robot scene with the fixed cameras and whatever `add_props` adds to the spec."""
    spec = mujoco.MjSpec.from_file(str(ROBOT_XML))
    for name, (pos, target, fovy) in _FIXED_CAMERAS.items():
        spec.worldbody.add_camera(name=name, pos=pos, quat=look_at_quat(np.array(pos), np.array(target)), fovy=fovy)
    add_props(spec)
    return spec.compile()

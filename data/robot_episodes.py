"""Demonstrations recorded on a robot over ROS (from bags, or live) as polyact episodes and datasets.

Both ways in, `polyact data import-rosbag` and `polyact ros record`, end with the same thing: per episode,
frames of each camera, the state and the action at a fixed rate, and the operator's outcome. This module
names those columns from the message types they came from and writes them under the contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from polyact.contract import ActionSpec, CameraSpec, EnvSpec
from polyact.data.episode import Episode
from polyact.data.writer import DatasetWriter

POSE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw")
TWIST_NAMES = ("vx", "vy", "vz", "wx", "wy", "wz")


def state_names(state_type: str, joints: list[str], dim: int) -> tuple[str, ...]:
    """A PoseStamped's x, y, z, qx, qy, qz, qw; a JointState's chosen joints, or joint_0.. in its order."""
    if state_type.endswith("PoseStamped"):
        return POSE_NAMES
    return tuple(joints) or tuple(f"joint_{i}" for i in range(dim))


def action_names(action_type: str, states: tuple[str, ...], dim: int) -> tuple[str, ...]:
    """A twist's vx..wz; d_<state> for next-state differences (no action topic); a0.. for arrays."""
    if not action_type:
        return tuple(f"d_{n}" for n in states)
    if "Twist" in action_type:
        return TWIST_NAMES
    return tuple(f"a{i}" for i in range(dim))


def robot_spec(
    task: str,
    cameras: list[str],
    rate_hz: float,
    names: tuple[tuple[str, ...], tuple[str, ...]],
    episodes: list[dict[str, Any]],
    source: str,
) -> EnvSpec:
    """The contract of recorded episodes: their cameras' sizes, state and action `names`, and as action
    bounds the range of their actions (a robot's own limits are not in its messages; the notes say so)."""
    first, (states, actions) = episodes[0], names
    recorded = np.concatenate([e["action"] for e in episodes])
    return EnvSpec(
        suite="robot",
        tasks=(task,),
        cameras=tuple(CameraSpec(n, *first[f"rgb/{n}"].shape[1:3]) for n in cameras),
        state_names=states,
        goal_names=(),
        action=ActionSpec(actions, tuple(recorded.min(0).astype(float)), tuple(recorded.max(0).astype(float)), source),
        control_hz=rate_hz,
        max_episode_steps=max(len(e["action"]) for e in episodes),
        notes={"action_bounds": "the range of the actions recorded when the dataset was created"},
    )


def robot_writer(out: str | Path, spec: EnvSpec, instruction: str, metadata: dict[str, Any]) -> DatasetWriter:
    """A new dataset for robot episodes: camera frames and state (no depth or camera poses are recorded)."""
    features = {k: v for k, v in spec.features().items() if k.startswith("rgb/") or k == "state"}
    return DatasetWriter.create(
        out,
        features=features,
        action=spec.action_feature(),
        env_spec=spec,
        fps=spec.control_hz,
        tasks={t: [instruction] for t in spec.tasks},
        metadata=metadata,
    )


def robot_episode(episode: dict[str, Any], index: int, task: str, instruction: str) -> Episode:
    """`episode`: `rgb/<cam>` (T, H, W, 3), `state` (T, S), `action` (T, A), `success` -> an Episode."""
    length = len(episode["action"])
    successes = np.zeros(length, bool)
    successes[-1] = episode["success"]
    return Episode(
        task=task,
        instruction=instruction,
        seed=index,
        success=bool(episode["success"]),
        observations={
            **{k: np.asarray(v, np.uint8) for k, v in episode.items() if k.startswith("rgb/")},
            "state": np.asarray(episode["state"], np.float32),
        },
        actions=np.asarray(episode["action"], np.float32),
        rewards=np.zeros(length, np.float32),
        successes=successes,
    )

"""Demonstrations recorded on a robot over ROS (from bags, or live) as polyact episodes and datasets.

Both ways in, `polyact data import-rosbag` and `polyact ros record`, end with the same thing: per episode,
frames of each camera, the state and the action at a fixed rate, and the operator's outcome. This module
names those columns from the message types they came from and writes them under the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyact.contract import ActionSpec, CameraSpec, EnvSpec
from polyact.data.episode import Episode
from polyact.data.writer import DatasetWriter
from polyact.errors import ConfigError

POSE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw")
TWIST_NAMES = ("vx", "vy", "vz", "wx", "wy", "wz")


@dataclass
class RobotTopics:
    """What a recording's ROS topics mean, as `polyact data import-rosbag` and `polyact ros record` read
    them: cameras as NAME:TOPIC, the state topic (and which joints, in order), the command topic (empty:
    next-state differences), the rate the streams are aligned to, and the episodes' task and instruction."""

    out: str = ""
    task: str = "teleop"
    instruction: str = ""
    rate_hz: float = 10.0
    cameras: list[str] = field(default_factory=list)  # NAME:TOPIC each
    state_topic: str = ""
    state_joints: list[str] = field(default_factory=list)
    action_topic: str = ""  # empty: the next step's state minus this one's

    def check(self, command: str, required: tuple[str, ...] = ()) -> None:
        """Refuse a config that lacks what `command` needs, naming every missing key."""
        missing = [k for k in (*required, "out", "instruction", "cameras", "state_topic") if not getattr(self, k)]
        if missing:
            raise ConfigError(f"{command} needs {', '.join(missing)} (see --help)")
        if self.rate_hz <= 0:
            raise ConfigError(f"rate_hz must be > 0, got {self.rate_hz}")
        bad = [c for c in self.cameras if not all(c.partition(":")[::2])]
        if bad:
            raise ConfigError(f"cameras are NAME:TOPIC, e.g. front:/camera/image_raw; got {bad}")

    @property
    def camera_topics(self) -> dict[str, str]:
        return dict(c.split(":", 1) for c in self.cameras)


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


def robot_spec(topics: RobotTopics, episodes: list[dict[str, Any]], types: dict[str, str], source: str) -> EnvSpec:
    """The contract of recorded episodes: their cameras' sizes; state and action names from the message
    `types` ("state", "action": "" for next-state differences); as action bounds the range of their
    actions (a robot's own limits are not in its messages; the notes say so); `source` says where the
    actions came from."""
    first = episodes[0]
    states = state_names(types["state"], topics.state_joints, first["state"].shape[1])
    actions = action_names(types.get("action", ""), states, first["action"].shape[1])
    recorded = np.concatenate([e["action"] for e in episodes])
    return EnvSpec(
        suite="robot",
        tasks=(topics.task,),
        cameras=tuple(CameraSpec(n, *first[f"rgb/{n}"].shape[1:3]) for n in topics.camera_topics),
        state_names=states,
        goal_names=(),
        action=ActionSpec(actions, tuple(recorded.min(0).astype(float)), tuple(recorded.max(0).astype(float)), source),
        control_hz=topics.rate_hz,
        max_episode_steps=max(len(e["action"]) for e in episodes),
        notes={"action_bounds": "the range of the actions recorded when the dataset was created"},
    )


def robot_writer(out: str | Path, spec: EnvSpec, instruction: str, metadata: dict[str, Any]) -> DatasetWriter:
    """A new dataset for robot episodes: camera frames and state (no depth or camera poses are recorded)."""
    features = {k: v for k, v in spec.features().items() if k.startswith("rgb/") or k == "state"}
    return DatasetWriter.for_spec(out, spec, {t: [instruction] for t in spec.tasks}, features, metadata=metadata)


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

"""`polyact data import-rosbag`: demonstrations recorded as ROS bags become a polyact dataset.

Bags are read with `rosbags` (pure Python: ROS 1 `.bag` files, ROS 2 directories of `.db3` or `.mcap`;
no ROS install needed). A config maps topics onto the observation/action contract:

    cameras      name -> topic: sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage
    state        sensor_msgs/JointState (positions, of `state_joints` in that order, or the message's
                 own order) or geometry_msgs/PoseStamped (x, y, z, qx, qy, qz, qw)
    action       geometry_msgs/Twist or TwistStamped (vx, vy, vz, wx, wy, wz), std_msgs/Float32MultiArray
                 or Float64MultiArray; or, with no action topic, the difference to the next step's state
    episodes     one per bag, or cut by a std_msgs/String marker topic: "start" opens an episode,
                 "success" / "failure" closes it with that outcome, "discard" drops it

Streams are aligned to a fixed rate (`rate_hz`) over the span where all of them have started and none
has ended: images take the nearest frame, the state is interpolated linearly between its two
neighbouring messages, and the action holds the last command sent at or before the step (a robot
executes a command until the next one arrives). A message's time is its header stamp when it has a
non-zero one, else the time the bag recorded it. The dataset's action bounds are the recorded actions'
range, which the spec notes say.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyact.data.robot_episodes import RobotTopics, robot_episode, robot_spec, robot_writer
from polyact.errors import DatasetError

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
STATE_TYPES = ("sensor_msgs/msg/JointState", "geometry_msgs/msg/PoseStamped")
ACTION_TYPES = (
    "geometry_msgs/msg/Twist",
    "geometry_msgs/msg/TwistStamped",
    "std_msgs/msg/Float32MultiArray",
    "std_msgs/msg/Float64MultiArray",
)
MARKER_TYPE = "std_msgs/msg/String"


@dataclass
class RosbagImportConfig(RobotTopics):
    """`polyact data import-rosbag bags=[A.bag,...] out=NEW_DIR instruction=... cameras=[front:/topic,...]
    state_topic=/joint_states [action_topic=/cmd_vel] [episode_topic=/episode] [rate_hz=10]`.

    See the module doc (data/rosbag_import.py) for the message types and how streams are aligned."""

    bags: list[str] = field(default_factory=list)
    episode_topic: str = ""  # empty: each bag is one successful episode

    def __post_init__(self) -> None:
        self.check("polyact data import-rosbag", ("bags",))


@dataclass
class Stream:
    """One topic's messages in time order: times (N,) ns and decoded values."""

    times: np.ndarray
    values: list[Any]


def _stamp(msg: Any, recorded: int) -> int:
    header = getattr(msg, "header", None)
    if header is not None:
        stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        if stamp > 0:
            return int(stamp)
    return int(recorded)


def decode_image(msg: Any, msgtype: str, topic: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a sensor_msgs Image or CompressedImage."""
    if msgtype.endswith("CompressedImage"):
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(bytes(msg.data))).convert("RGB"))
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
    if msg.encoding not in channels:
        raise DatasetError(f"{topic}: image encoding {msg.encoding!r} is not supported; valid: {sorted(channels)}")
    c = channels[msg.encoding]
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, : msg.width * c].reshape(msg.height, msg.width, c)
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    rgb = pixels[..., :3]
    return np.ascontiguousarray(rgb[..., ::-1] if msg.encoding.startswith("bgr") else rgb)


def decode_state(msg: Any, msgtype: str, joints: list[str], topic: str) -> np.ndarray:
    if msgtype.endswith("PoseStamped"):
        p, q = msg.pose.position, msg.pose.orientation
        return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], np.float64)
    names = list(msg.name)
    if not joints:
        return np.asarray(msg.position, np.float64)
    absent = [j for j in joints if j not in names]
    if absent:
        raise DatasetError(f"{topic}: joints {absent} are not in the JointState message, which has {names}")
    return np.array([msg.position[names.index(j)] for j in joints], np.float64)


def decode_action(msg: Any, msgtype: str) -> np.ndarray:
    twist = msg.twist if msgtype.endswith("TwistStamped") else msg
    if msgtype.endswith(("Twist", "TwistStamped")):
        lin, ang = twist.linear, twist.angular
        return np.array([lin.x, lin.y, lin.z, ang.x, ang.y, ang.z], np.float64)
    return np.asarray(msg.data, np.float64)


def nearest(stream: Stream, times: np.ndarray) -> list[Any]:
    """The value whose time is closest to each of `times`."""
    if len(stream.times) == 1:
        return [stream.values[0]] * len(times)
    right = np.clip(np.searchsorted(stream.times, times), 1, len(stream.times) - 1)
    left = right - 1
    pick = np.where(times - stream.times[left] <= stream.times[right] - times, left, right)
    return [stream.values[i] for i in pick]


def interpolate(stream: Stream, times: np.ndarray) -> np.ndarray:
    """Linear interpolation of (N, D) values at `times` (inside the stream's span)."""
    values = np.stack(stream.values)
    return np.stack([np.interp(times, stream.times, values[:, d]) for d in range(values.shape[1])], axis=1)


def hold(stream: Stream, times: np.ndarray) -> np.ndarray:
    """The last value at or before each of `times` (zero-order hold)."""
    index = np.clip(np.searchsorted(stream.times, times, side="right") - 1, 0, len(stream.times) - 1)
    return np.stack(stream.values)[index]


@dataclass
class Segment:
    """One episode's time span in a bag, and its outcome."""

    start: int
    stop: int
    success: bool


def _segments(marker: Stream | None, span: tuple[int, int]) -> list[Segment]:
    """Episodes cut by marker strings, or the whole span as one successful episode."""
    if marker is None:
        return [Segment(*span, True)]
    out, opened = [], None
    for time, word in zip(marker.times.tolist(), marker.values, strict=True):
        if word == "start":
            opened = time
        elif word in ("success", "failure", "discard"):
            if opened is not None and word != "discard":
                out.append(Segment(opened, time, word == "success"))
            opened = None
        else:
            raise DatasetError(f"episode marker {word!r} is not one of start, success, failure, discard")
    return out


class BagReader:
    """The configured topics of one bag, decoded."""

    def __init__(self, path: str, cfg: RosbagImportConfig):
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        self.path, self.cfg = path, cfg
        if not Path(path).exists():
            raise DatasetError(f"bag {path} does not exist")
        self.reader = AnyReader([Path(path)], default_typestore=get_typestore(Stores.ROS1_NOETIC))
        self.reader.open()

    def close(self) -> None:
        self.reader.close()

    def _connections(self, topic: str, valid: tuple[str, ...]) -> list[Any]:
        topics = self.reader.topics
        if topic not in topics:
            raise DatasetError(f"{self.path} has no topic {topic!r}; it has {sorted(topics)}")
        msgtype = topics[topic].msgtype
        if msgtype not in valid:
            raise DatasetError(f"{self.path}: {topic} carries {msgtype}; this importer reads {', '.join(valid)}")
        return topics[topic].connections

    def msgtype(self, topic: str) -> str:
        return self.reader.topics[topic].msgtype

    def stream(self, topic: str, valid: tuple[str, ...], decode: Callable[[Any, str], Any]) -> Stream:
        connections = self._connections(topic, valid)
        times, values = [], []
        for connection, recorded, raw in self.reader.messages(connections=connections):
            msg = self.reader.deserialize(raw, connection.msgtype)
            times.append(_stamp(msg, recorded))
            values.append(decode(msg, connection.msgtype))
        if not times:
            raise DatasetError(f"{self.path}: topic {topic} has no messages")
        order = np.argsort(times, kind="stable")
        return Stream(np.asarray(times, np.int64)[order], [values[i] for i in order])


def read_bag(path: str, cfg: RosbagImportConfig) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The episodes of one bag (per episode `rgb/<cam>` (T, H, W, 3), `state` (T, S), `action` (T, A) and
    `success`, at `cfg.rate_hz`) and the message types of its state and action topics."""
    bag = BagReader(path, cfg)
    try:
        cameras = {
            name: bag.stream(topic, IMAGE_TYPES, lambda m, t, topic=topic: decode_image(m, t, topic))
            for name, topic in cfg.camera_topics.items()
        }
        state = bag.stream(
            cfg.state_topic, STATE_TYPES, lambda m, t: decode_state(m, t, cfg.state_joints, cfg.state_topic)
        )
        action = bag.stream(cfg.action_topic, ACTION_TYPES, decode_action) if cfg.action_topic else None
        marker = bag.stream(cfg.episode_topic, (MARKER_TYPE,), lambda m, t: m.data) if cfg.episode_topic else None
        types = {"state": bag.msgtype(cfg.state_topic), "action": bag.msgtype(cfg.action_topic) if action else ""}
    finally:
        bag.close()
    streams = [*cameras.values(), state, *([action] if action else [])]
    span = (max(int(s.times[0]) for s in streams), min(int(s.times[-1]) for s in streams))
    step = int(round(1e9 / cfg.rate_hz))
    episodes = []
    for segment in _segments(marker, span):
        start, stop = max(segment.start, span[0]), min(segment.stop, span[1])
        times = np.arange(start, stop + 1, step, dtype=np.int64)
        if len(times) < 2:
            continue
        states = interpolate(state, times)
        episode = {f"rgb/{name}": np.stack(nearest(s, times)) for name, s in cameras.items()}
        if action is not None:
            episode["state"], episode["action"] = states, hold(action, times)
        else:  # the command is where the state goes next: one step fewer
            episode = {k: v[:-1] for k, v in episode.items()}
            episode["state"], episode["action"] = states[:-1], np.diff(states, axis=0)
        episode["success"] = segment.success
        episodes.append(episode)
    return episodes, types


def run(cfg: RosbagImportConfig) -> Path:
    """Import every bag (one after another, each episode committed as it is written) and report."""
    episodes, types = [], {}
    for path in cfg.bags:
        found, types = read_bag(path, cfg)
        if not found:
            raise DatasetError(f"{path}: no episode of at least two steps at {cfg.rate_hz} Hz")
        episodes += found
    shapes = {(k, v.shape[1:]) for e in episodes for k, v in e.items() if k != "success"}
    if len(shapes) != len({k for k, _ in shapes}):
        raise DatasetError(f"the bags disagree on image sizes or state/action sizes: {sorted(shapes)}")
    source = f"{cfg.action_topic or 'next-state differences'} at {cfg.rate_hz} Hz (a command held until the next)"
    spec = robot_spec(cfg, episodes, types, source)
    metadata = {"imported_from": [str(Path(b).resolve()) for b in cfg.bags]}
    with robot_writer(cfg.out, spec, cfg.instruction, metadata) as writer:
        for i, episode in enumerate(episodes):
            writer.add_episode(robot_episode(episode, i, cfg.task, cfg.instruction))
    print(f"{cfg.out}: {len(episodes)} episodes, {sum(len(e['action']) for e in episodes)} steps at {cfg.rate_hz} Hz")
    return Path(cfg.out)

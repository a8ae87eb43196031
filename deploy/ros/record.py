"""`polyact ros record`: teleoperated demonstrations from live ROS 1 topics, straight into a dataset.

The topics map onto the contract as in `polyact data import-rosbag` (data/rosbag_import.py: the same
message types and decoders). At `rate_hz` the recorder takes the newest frame of every camera, the newest
state and the command in force (held until the next), while an episode is open. The operator opens and
closes episodes with words on `episode_topic` (std_msgs/String) or, with `keyboard=true`, on stdin:

    start / s      open an episode (an open one is discarded first)
    success / y    close it as a success and commit it to the dataset
    failure / n    close it as a failure and commit it
    discard / d    drop it

Each closed episode is committed as collection commits (data/writer.py): a process killed at any moment
loses only the episode in progress, and the same command continues the dataset.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyact.data.robot_episodes import RobotTopics, robot_episode, robot_spec, robot_writer
from polyact.data.rosbag_import import (
    ACTION_TYPES,
    IMAGE_TYPES,
    MARKER_TYPE,
    STATE_TYPES,
    decode_action,
    decode_image,
    decode_state,
)
from polyact.errors import ConfigError, DatasetError

log = logging.getLogger("polyact.deploy.record")
WORDS = {"start": "start", "s": "start", "success": "success", "y": "success", "failure": "failure", "n": "failure"}
WORDS |= {"discard": "discard", "d": "discard"}


@dataclass
class RecordConfig(RobotTopics):
    """`polyact ros record out=DIR instruction=... cameras=[front:/topic] state_topic=/joint_states
    [action_topic=/cmd_vel] [episode_topic=/polyact/episode] [keyboard=true] [rate_hz=10]`."""

    episode_topic: str = "/polyact/episode"
    keyboard: bool = False
    node_name: str = "polyact_record"
    duration_s: float = 0.0  # 0 = until Ctrl-C or ROS shutdown

    def __post_init__(self) -> None:
        self.check("polyact ros record")


class EpisodeRecorder:
    """Newest messages in, fixed-rate steps out while an episode is open, episodes out on the operator's word.

    Thread-safe: ROS callbacks deliver messages and words, the main loop calls `tick`."""

    def __init__(self, cfg: RecordConfig, commit: Callable[[dict[str, Any], dict[str, str]], None]):
        self.cfg, self.commit = cfg, commit
        self.lock = threading.Lock()
        self.latest: dict[str, Any] = {}
        self.types: dict[str, str] = {}  # "state" / "action" -> message type, as first received
        self.steps: list[dict[str, Any]] | None = None  # the open episode's steps
        self.committed = 0

    def message(self, key: str, msgtype: str, msg: Any) -> None:
        """A decoded message of stream `key` (`rgb/<cam>`, `state` or `action`), its type `pkg/msg/Name`."""
        topic = {"state": self.cfg.state_topic, "action": self.cfg.action_topic}.get(key)
        if key.startswith("rgb/"):
            topic, valid = self.cfg.camera_topics[key[4:]], IMAGE_TYPES
        else:
            valid = STATE_TYPES if key == "state" else ACTION_TYPES
        if msgtype not in valid:
            raise DatasetError(f"{topic} carries {msgtype}; the recorder reads {', '.join(valid)}")
        if key.startswith("rgb/"):
            value = decode_image(msg, msgtype, topic)
        elif key == "state":
            value = decode_state(msg, msgtype, self.cfg.state_joints, topic)
        else:
            value = decode_action(msg, msgtype)
        with self.lock:
            self.types.setdefault(key, msgtype)
            self.latest[key] = value

    def word(self, text: str) -> str:
        """Act on an operator's word; returns what happened (for the log)."""
        word = WORDS.get(text.strip().lower())
        if word is None:
            raise ConfigError(f"unknown episode word {text!r}; valid: {', '.join(sorted(WORDS))}")
        with self.lock:
            steps, self.steps = self.steps, ([] if word == "start" else None)
            if word == "start":
                return "episode started" + (f" ({len(steps)} open steps discarded)" if steps else "")
            if steps is None:
                return f"{word}: no episode is open"
            if word == "discard":
                return f"episode discarded ({len(steps)} steps)"
            episode = self._episode(steps, word == "success")
            if episode is None:
                return f"{word}: the episode has fewer than two steps; dropped"
            self.commit(episode, dict(self.types))
            self.committed += 1
            return f"episode {self.committed} committed as a {word} ({len(episode['action'])} steps)"

    def tick(self) -> bool:
        """Record one step of the open episode; False when none is open or a stream has not started."""
        keys = [f"rgb/{c}" for c in self.cfg.camera_topics] + ["state"]
        keys += ["action"] if self.cfg.action_topic else []
        with self.lock:
            if self.steps is None or any(k not in self.latest for k in keys):
                return False
            self.steps.append({k: self.latest[k] for k in keys})
            return True

    def _episode(self, steps: list[dict[str, Any]], success: bool) -> dict[str, Any] | None:
        columns = {k: np.stack([s[k] for s in steps]) for k in steps[0]} if steps else {}
        if not self.cfg.action_topic:  # the command is where the state goes next: one step fewer
            if len(steps) < 3:
                return None
            columns = {k: v[:-1] for k, v in columns.items()} | {"action": np.diff(columns["state"], axis=0)}
        elif len(steps) < 2:
            return None
        return {**columns, "success": success}


class DatasetSink:
    """Commits episodes to `out`: created from the first episode's shapes and names, or continued."""

    def __init__(self, cfg: RecordConfig):
        self.cfg, self.writer = cfg, None

    def __call__(self, episode: dict[str, Any], types: dict[str, str]) -> None:
        from polyact.data import DatasetWriter

        if self.writer is None:
            source = f"{self.cfg.action_topic or 'next-state differences'} at {self.cfg.rate_hz} Hz, recorded live"
            spec = robot_spec(self.cfg, [episode], types, source)
            if (Path(self.cfg.out) / "meta.json").exists():
                self.writer = DatasetWriter.open(self.cfg.out)
                self._check_same(spec)
            else:
                metadata = {"recorded_with": "polyact ros record"}
                self.writer = robot_writer(self.cfg.out, spec, self.cfg.instruction, metadata)
        index = self.writer.num_episodes
        self.writer.add_episode(robot_episode(episode, index, self.cfg.task, self.cfg.instruction))

    def _check_same(self, spec: Any) -> None:
        old = self.writer.env_spec
        same = old is not None and (old.cameras, old.state_names, old.action.names) == (
            spec.cameras,
            spec.state_names,
            spec.action.names,
        )
        if not same:
            raise DatasetError(
                f"{self.cfg.out} holds episodes of other cameras, state or actions; record into a new directory"
            )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _ros_type(rospy_type: str) -> str:
    """`sensor_msgs/Image` (ROS 1 names) -> `sensor_msgs/msg/Image` (the importer's)."""
    package, _, name = rospy_type.partition("/")
    return f"{package}/msg/{name}"


def run(cfg: RecordConfig) -> int:
    """Record until Ctrl-C, ROS shutdown or `duration_s`; returns the number of episodes committed."""
    from polyact.deploy.ros.ros1 import import_rospy, init_node

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    rospy = import_rospy()
    import roslib.message

    init_node(rospy, cfg.node_name)
    sink = DatasetSink(cfg)
    recorder = EpisodeRecorder(cfg, sink)
    errors: list[Exception] = []

    def on(key: str) -> Callable[[Any], None]:
        def callback(raw: Any) -> None:
            try:
                kind = raw._connection_header["type"]
                msg = roslib.message.get_message_class(kind)().deserialize(raw._buff)
                if key == "word":
                    if _ros_type(kind) != MARKER_TYPE:
                        raise DatasetError(f"{cfg.episode_topic} carries {kind}; episode words are std_msgs/String")
                    log.info(recorder.word(msg.data))
                else:
                    recorder.message(key, _ros_type(kind), msg)
            except Exception as err:  # a callback thread cannot stop the recorder: the main loop does
                errors.append(err)

        return callback

    streams = {f"rgb/{name}": topic for name, topic in cfg.camera_topics.items()} | {"state": cfg.state_topic}
    streams |= {"action": cfg.action_topic} if cfg.action_topic else {}
    streams |= {"word": cfg.episode_topic} if cfg.episode_topic else {}
    subscribers = [
        rospy.Subscriber(topic, rospy.AnyMsg, on(key), queue_size=1, buff_size=1 << 24)
        for key, topic in streams.items()
    ]
    if cfg.keyboard:
        threading.Thread(target=_keyboard, args=(recorder, errors), daemon=True).start()
    log.info("recording %s at %.1f Hz into %s; words on %s", sorted(streams), cfg.rate_hz, cfg.out, cfg.episode_topic)
    period, began = 1.0 / cfg.rate_hz, time.monotonic()
    next_tick = began
    try:
        while not rospy.is_shutdown() and not (cfg.duration_s and time.monotonic() - began > cfg.duration_s):
            if errors:
                raise errors[0]
            recorder.tick()
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        for subscriber in subscribers:
            subscriber.unregister()
        sink.close()
    log.info("%d episodes committed to %s", recorder.committed, cfg.out)
    return recorder.committed


def _keyboard(recorder: EpisodeRecorder, errors: list[Exception]) -> None:
    print("episode words: s = start, y = success, n = failure, d = discard", file=sys.stderr)
    for line in sys.stdin:
        if line.strip():
            try:
                log.info(recorder.word(line))
            except ConfigError as err:
                log.warning("%s", err)

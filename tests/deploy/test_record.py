"""`polyact ros record`'s recorder without ROS: newest messages become fixed-rate steps while an episode is
open, the operator's words commit or drop episodes, and a continued dataset must match. (The live round
trip against a real roscore, killed mid-episode, is in test_ros1.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from polyact.data import EpisodeDataset
from polyact.deploy.ros.record import DatasetSink, EpisodeRecorder, RecordConfig
from polyact.errors import ConfigError, DatasetError

T = get_typestore(Stores.ROS1_NOETIC)
STAMP = T.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0)
HEADER = T.types["std_msgs/msg/Header"](seq=0, stamp=STAMP, frame_id="")


def image(value: int):
    data = np.full((4, 5, 3), value, np.uint8).reshape(-1)
    return T.types["sensor_msgs/msg/Image"](
        header=HEADER, height=4, width=5, encoding="rgb8", is_bigendian=0, step=15, data=data
    )


def joints(q: float):
    return T.types["sensor_msgs/msg/JointState"](
        header=HEADER, name=["a", "b"], position=np.array([q, 2 * q]), velocity=np.zeros(0), effort=np.zeros(0)
    )


def config(out: Path, **overrides) -> RecordConfig:
    settings = {"out": str(out), "instruction": "wave", "cameras": ["front:/cam"], "state_topic": "/joints"}
    return RecordConfig(**{**settings, **overrides})


def feed(recorder: EpisodeRecorder, steps: int, start: int = 0) -> None:
    for i in range(start, start + steps):
        recorder.message("rgb/front", "sensor_msgs/msg/Image", image(i))
        recorder.message("state", "sensor_msgs/msg/JointState", joints(0.1 * i))
        assert recorder.tick()


def test_words_commit_and_drop_episodes(tmp_path: Path):
    sink = DatasetSink(config(tmp_path / "d"))
    recorder = EpisodeRecorder(sink.cfg, sink)
    assert not recorder.tick()  # no episode open
    assert recorder.word("start") == "episode started"
    feed(recorder, 5)
    assert recorder.word("y") == "episode 1 committed as a success (4 steps)"  # next-state actions: one fewer
    recorder.word("s")
    feed(recorder, 3, start=10)
    assert recorder.word("discard") == "episode discarded (3 steps)"
    recorder.word("start")
    feed(recorder, 4, start=20)
    assert recorder.word("n").startswith("episode 2 committed as a failure")
    assert recorder.word("n") == "failure: no episode is open"
    with pytest.raises(ConfigError, match="unknown episode word 'stop'; valid: d, discard, failure"):
        recorder.word("stop")
    sink.close()
    ds = EpisodeDataset(tmp_path / "d")
    assert [(e.length, e.success) for e in ds.episodes] == [(4, True), (3, False)]
    arrays = ds.episode_arrays(0)
    np.testing.assert_array_equal(arrays["obs/rgb/front"][:, 0, 0, 0], [0, 1, 2, 3])
    np.testing.assert_allclose(arrays["action"], np.tile([0.1, 0.2], (4, 1)), atol=1e-6)
    assert ds.env_spec.state_names == ("joint_0", "joint_1") and ds.env_spec.action.names == ("d_joint_0", "d_joint_1")


def test_a_continued_dataset_must_record_the_same_things(tmp_path: Path):
    sink = DatasetSink(config(tmp_path / "d"))
    recorder = EpisodeRecorder(sink.cfg, sink)
    recorder.word("start")
    feed(recorder, 3)
    recorder.word("success")
    sink.close()
    again = DatasetSink(config(tmp_path / "d", state_joints=["b", "a"]))
    recorder = EpisodeRecorder(again.cfg, again)
    recorder.word("start")
    feed(recorder, 3)
    with pytest.raises(DatasetError, match="holds episodes of other cameras, state or actions"):
        recorder.word("success")


def test_a_wrong_message_type_is_named():
    recorder = EpisodeRecorder(config(Path("unused")), lambda *a: None)
    with pytest.raises(DatasetError, match="/cam carries sensor_msgs/msg/JointState; the recorder reads sensor_msgs"):
        recorder.message("rgb/front", "sensor_msgs/msg/JointState", joints(0.0))
    with pytest.raises(ConfigError, match="cameras are NAME:TOPIC"):
        config(Path("o"), cameras=["/cam"])

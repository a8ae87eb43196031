"""`polyact data import-rosbag` on bags the tests write with `rosbags`: streams at their own rates aligned to
the dataset's (nearest frame, interpolated state, held command), episodes cut by markers, ROS 2 bags, the
next-state action, and what it refuses."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore

from polyact.data import EpisodeDataset
from polyact.data.rosbag_import import RosbagImportConfig, run
from polyact.errors import ConfigError, DatasetError

T = get_typestore(Stores.ROS1_NOETIC)
SECOND = 1_000_000_000
START = 100 * SECOND


def header(t: int):
    stamp = T.types["builtin_interfaces/msg/Time"](sec=t // SECOND, nanosec=t % SECOND)
    return T.types["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id="")


def frame(i: int) -> np.ndarray:
    """Image i: 6x8 RGB whose red channel is i everywhere (so the nearest frame is readable back)."""
    pixels = np.zeros((6, 8, 3), np.uint8)
    pixels[..., 0], pixels[..., 1] = i, np.arange(8)[None] * 10
    return pixels


def image_msg(i: int, t: int, encoding: str = "bgr8"):
    data = frame(i)[..., ::-1] if encoding == "bgr8" else frame(i)
    return T.types["sensor_msgs/msg/Image"](
        header=header(t), height=6, width=8, encoding=encoding, is_bigendian=0, step=24, data=data.reshape(-1).copy()
    )


def joint_msg(t: int):
    """Two joints moving linearly in time (so interpolation is exact): q = (s, -2 s) at s seconds from START."""
    s = (t - START) / SECOND
    return T.types["sensor_msgs/msg/JointState"](
        header=header(t),
        name=["elbow", "shoulder"],
        position=np.array([-2 * s, s]),
        velocity=np.zeros(0),
        effort=np.zeros(0),
    )


def twist_msg(k: int):
    vec = T.types["geometry_msgs/msg/Vector3"]
    return T.types["geometry_msgs/msg/Twist"](linear=vec(x=float(k), y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=0.5))


def write_bag(writer, markers: list[tuple[float, str]] = (), seconds: float = 3.0, images: str = "raw") -> None:
    """Camera at 15 Hz, joint states at 50 Hz, a velocity command at 4 Hz (value k = its index), markers."""
    conns = {
        "cam": writer.add_connection(
            "/cam/image" + ("/compressed" if images == "compressed" else ""),
            "sensor_msgs/msg/CompressedImage" if images == "compressed" else "sensor_msgs/msg/Image",
            typestore=T,
        ),
        "joints": writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=T),
        "cmd": writer.add_connection("/cmd_vel", "geometry_msgs/msg/Twist", typestore=T),
        "marker": writer.add_connection("/episode", "std_msgs/msg/String", typestore=T),
    }
    serialize = T.serialize_ros1 if isinstance(writer, Writer1) else T.serialize_cdr
    messages = []
    for i in range(int(seconds * 15) + 1):
        t = START + i * SECOND // 15
        if images == "compressed":
            png = io.BytesIO()
            Image.fromarray(frame(i)).save(png, format="PNG")
            msg = T.types["sensor_msgs/msg/CompressedImage"](
                header=header(t), format="png", data=np.frombuffer(png.getvalue(), np.uint8)
            )
            messages.append((t, "cam", msg, "sensor_msgs/msg/CompressedImage"))
        else:
            messages.append((t, "cam", image_msg(i, t), "sensor_msgs/msg/Image"))
    for i in range(int(seconds * 50) + 1):
        t = START + i * SECOND // 50
        messages.append((t, "joints", joint_msg(t), "sensor_msgs/msg/JointState"))
    for k in range(int(seconds * 4) + 1):
        messages.append((START + k * SECOND // 4, "cmd", twist_msg(k), "geometry_msgs/msg/Twist"))
    for at, word in markers:
        marker = T.types["std_msgs/msg/String"](data=word)
        messages.append((START + int(at * SECOND), "marker", marker, "std_msgs/msg/String"))
    for t, key, msg, msgtype in sorted(messages, key=lambda m: m[0]):
        writer.write(conns[key], t, serialize(msg, msgtype))


def config(bags: list[Path], out: Path, **overrides) -> RosbagImportConfig:
    settings = {
        "bags": [str(b) for b in bags],
        "out": str(out),
        "instruction": "wipe the table",
        "cameras": ["front:/cam/image"],
        "state_topic": "/joint_states",
        "state_joints": ["shoulder", "elbow"],
        "action_topic": "/cmd_vel",
        "rate_hz": 10.0,
    }
    return RosbagImportConfig(**{**settings, **overrides})


@pytest.fixture
def ros1_bag(tmp_path: Path) -> Path:
    path = tmp_path / "demo.bag"
    with Writer1(path) as writer:
        write_bag(writer, markers=[(0.2, "start"), (1.2, "success"), (1.3, "start"), (1.6, "discard"),
                                   (1.8, "start"), (2.9, "failure")])  # fmt: skip
    return path


def test_streams_are_aligned_to_the_rate(ros1_bag: Path, tmp_path: Path):
    run(config([ros1_bag], tmp_path / "one", rate_hz=10.0))
    ds = EpisodeDataset(tmp_path / "one")
    assert len(ds) == 1  # no marker topic: the whole bag, from 0 s (all streams started) to 3 s
    arrays = ds.episode_arrays(0)
    seconds = np.arange(31) / 10
    assert len(arrays["action"]) == 31
    # the state interpolated, in state_joints order (shoulder = s, elbow = -2 s)
    np.testing.assert_allclose(arrays["obs/state"], np.stack([seconds, -2 * seconds], 1), atol=1e-5)
    # the nearest of the 15 Hz frames (bgr8 turned into RGB), by their nanosecond stamps
    frame_times, step_times = np.arange(46) * SECOND // 15, np.arange(31) * SECOND // 10
    nearest = np.abs(step_times[:, None] - frame_times[None]).argmin(1)
    np.testing.assert_array_equal(arrays["obs/rgb/front"][:, 0, 0, 0], nearest)
    np.testing.assert_array_equal(arrays["obs/rgb/front"][5], frame(int(nearest[5])))
    # the last 4 Hz command at or before each step
    np.testing.assert_array_equal(arrays["action"][:, 0], np.floor(seconds * 4 + 1e-9))
    np.testing.assert_array_equal(arrays["action"][:, 5], 0.5)
    spec = ds.env_spec
    assert spec.action.names == ("vx", "vy", "vz", "wx", "wy", "wz") and spec.state_names == ("shoulder", "elbow")
    assert spec.control_hz == 10.0 and spec.camera_names == ("front",) and ds.tasks == {"teleop": ["wipe the table"]}


def test_markers_cut_episodes_with_their_outcome(ros1_bag: Path, tmp_path: Path):
    run(config([ros1_bag], tmp_path / "cut", episode_topic="/episode"))
    ds = EpisodeDataset(tmp_path / "cut")
    assert [(e.length, e.success) for e in ds.episodes] == [(11, True), (12, False)]  # 0.2-1.2 s, 1.8-2.9 s
    np.testing.assert_allclose(ds.episode_arrays(1)["obs/state"][0], [1.8, -3.6], atol=1e-5)


def test_a_ros2_bag_with_compressed_images_and_next_state_actions(tmp_path: Path):
    path = tmp_path / "ros2"
    with Writer2(path, version=9) as writer:
        write_bag(writer, seconds=1.0, images="compressed")
    run(config([path], tmp_path / "two", cameras=["front:/cam/image/compressed"], action_topic="", rate_hz=5.0))
    ds = EpisodeDataset(tmp_path / "two")
    arrays = ds.episode_arrays(0)
    assert len(arrays["action"]) == 5  # 6 steps at 5 Hz over 1 s, the last has no next state
    np.testing.assert_allclose(arrays["action"], np.tile([0.2, -0.4], (5, 1)), atol=1e-5)
    np.testing.assert_array_equal(arrays["obs/rgb/front"][:, 0, 0, 0], [0, 3, 6, 9, 12])  # lossless PNG
    assert ds.env_spec.action.names == ("d_shoulder", "d_elbow")


def test_what_the_importer_refuses(ros1_bag: Path, tmp_path: Path):
    with pytest.raises(DatasetError, match=r"has no topic '/camera'; it has \['/cam/image', '/cmd_vel'"):
        run(config([ros1_bag], tmp_path / "a", cameras=["front:/camera"]))
    with pytest.raises(DatasetError, match="/cmd_vel carries geometry_msgs/msg/Twist; this importer reads sensor_msgs"):
        run(config([ros1_bag], tmp_path / "b", cameras=["front:/cmd_vel"]))
    with pytest.raises(DatasetError, match=r"joints \['wrist'\] are not in the JointState message"):
        run(config([ros1_bag], tmp_path / "c", state_joints=["wrist"]))
    with pytest.raises(DatasetError, match="bag .*missing.bag does not exist"):
        run(config([tmp_path / "missing.bag"], tmp_path / "d"))
    with pytest.raises(ConfigError, match="needs instruction, state_topic"):
        RosbagImportConfig(bags=["x.bag"], out="o", cameras=["front:/cam"])
    with pytest.raises(ConfigError, match=r"cameras are NAME:TOPIC, e.g. front:/camera/image_raw; got \['/cam'\]"):
        config([Path("x.bag")], Path("o"), cameras=["/cam"])


def test_the_command_line(ros1_bag: Path, tmp_path: Path):
    from polyact.cli import main

    out = tmp_path / "cli"
    args = [f"bags=[{ros1_bag}]", f"out={out}", "instruction=wipe the table", "cameras=[front:/cam/image]"]
    args += ["state_topic=/joint_states", "action_topic=/cmd_vel", "episode_topic=/episode"]
    assert main(["data", "import-rosbag", *args]) == 0
    assert len(EpisodeDataset(out)) == 2


def test_a_mistyped_key_is_named_although_the_defaults_are_incomplete():
    """The importer's defaults alone are refused (it needs bags, topics...); a typo must still be reported
    as a typo, with the closest keys."""
    from polyact.config import load_config

    with pytest.raises(ConfigError, match=r"unknown config key 'camras'; valid keys, closest first: cameras"):
        load_config(RosbagImportConfig, ["camras=[front:/cam]"])

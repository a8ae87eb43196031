"""What the ROS 1 and ROS 2 adapters share: message fields are the same in both, only the libraries and
the stamp type differ, so reading and filling messages lives here once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from polyact.deploy.config import BridgeConfig
from polyact.deploy.ros.convert import decode_image, intrinsics_from_ros
from polyact.deploy.ros.core import Bridge, Tick

Subscription = tuple[str, type, Callable[[Any], None]]  # topic, message class, callback


def subscriptions(bridge: Bridge, cfg: BridgeConfig) -> tuple[list[Subscription], list[Subscription]]:
    """What the bridge subscribes to, as (sensor streams, commands and context): the same topics and
    callbacks in both ROS versions, whose message packages share names and fields. Sensor streams want
    a keep-latest, best-effort subscription; the rest must not be dropped."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from std_msgs.msg import Bool, Empty, Float32MultiArray, Float64, String

    t, s = cfg.topics, bridge.sensors
    sensors: list[Subscription] = []
    for camera, topic in camera_topics(t.rgb, s.cameras).items():
        sensors.append((topic, Image, lambda m, c=camera: s.rgb(c, image_array(m))))
    if any(k.startswith("depth/") for k in s.features):
        for camera, topic in camera_topics(t.depth, s.cameras).items():
            sensors.append((topic, Image, lambda m, c=camera: s.depth(c, image_array(m))))
        for camera, topic in camera_topics(t.camera_info, s.cameras).items():
            sensors.append((topic, CameraInfo, lambda m, c=camera: s.camera_info(c, *camera_info(m))))
    sensors.append((t.pose, PoseStamped, lambda m: s.pose(xyz(m.pose.position), xyzw(m.pose.orientation))))
    if cfg.state_source == "pose" and t.gripper_state:
        sensors.append((t.gripper_state, Float64, lambda m: s.gripper_state(m.data)))
    if cfg.state_source == "joint_state":
        sensors.append((t.joint_state, JointState, lambda m: s.joint_state(m.name, m.position)))
    others: list[Subscription] = []
    if "goal" in s.features:
        others.append((t.goal, Float32MultiArray, lambda m: s.goal(m.data)))
    if not cfg.instruction:
        others.append((t.instruction, String, lambda m: s.instruction(m.data)))
    others.append((t.estop, Bool, lambda m: bridge.estop(m.data)))
    others.append((t.reset, Empty, lambda m: bridge.reset()))
    return sensors, others


def camera_info(m: Any) -> tuple[np.ndarray, int, int]:
    """Intrinsics, height and width of a sensor_msgs/CameraInfo (ROS 1 spells the matrix K, ROS 2 k)."""
    return intrinsics_from_ros(m.K if hasattr(m, "K") else m.k), m.height, m.width


def camera_topics(template: str, cameras: list[str]) -> dict[str, str]:
    """Camera -> topic, from a template such as /polyact/{camera}/rgb."""
    return {camera: template.format(camera=camera) for camera in cameras}


def image_array(m: Any) -> np.ndarray:
    """A sensor_msgs/Image as a contract array (see convert.decode_image)."""
    return decode_image(m.height, m.width, m.encoding, m.step, m.is_bigendian, bytes(m.data))


def xyz(p: Any) -> list[float]:
    return [p.x, p.y, p.z]


def xyzw(q: Any) -> list[float]:
    return [q.x, q.y, q.z, q.w]


def command_message(types: dict[str, type], cfg: BridgeConfig, tick: Tick, stamp: Any) -> Any:
    """The command message of a tick (`types` maps Twist, TwistStamped, PoseStamped to the version's
    classes): a twist (zero when holding), or the pose target (None before any pose was received)."""
    if cfg.command.kind == "pose":
        if tick.target is None:
            return None
        out = types["PoseStamped"]()
        out.header.stamp, out.header.frame_id = stamp, cfg.command.frame_id
        out.pose.position.x, out.pose.position.y, out.pose.position.z = map(float, tick.target[0])
        o = out.pose.orientation
        o.x, o.y, o.z, o.w = map(float, tick.target[1])
        return out
    twist = types["Twist"]()
    twist.linear.x, twist.linear.y, twist.linear.z = map(float, tick.command.linear)
    twist.angular.x, twist.angular.y, twist.angular.z = map(float, tick.command.angular)
    if cfg.command.kind == "twist":
        return twist
    out = types["TwistStamped"](twist=twist)
    out.header.stamp, out.header.frame_id = stamp, cfg.command.frame_id
    return out

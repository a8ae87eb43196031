"""What the ROS 1 and ROS 2 adapters share: message fields are the same in both, only the libraries and
the stamp type differ, so reading and filling messages lives here once."""

from __future__ import annotations

from typing import Any

import numpy as np

from polyact.deploy.config import BridgeConfig
from polyact.deploy.ros.convert import decode_image
from polyact.deploy.ros.core import Tick


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

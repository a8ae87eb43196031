"""The ROS 2 (rclpy) adapter of the bridge: the same core, topics and messages as ros1.py.

UNTESTED here: rclpy cannot be installed on the machines polyact is developed on (it is not on PyPI and
needs a ROS 2 distribution). It is written against the rclpy API of Humble and later, mirrors ros1.py
line by line, and is kept thin so that what it cannot break is tested through the ROS 1 adapter.

Run it on a machine with ROS 2 (docs/deploy.md):

    source /opt/ros/humble/setup.bash            # puts rclpy and the message packages on PYTHONPATH
    python3 -m venv --system-site-packages .venv && . .venv/bin/activate && pip install -e .
    polyact ros ros_version=2 policy=ws://gpu-box:8765 control_hz=10

Differences from ROS 1 it handles: CameraInfo's `k` (ROS 1: `K`); stamps as builtin_interfaces/Time;
sensor subscriptions with the sensor-data QoS (best effort, depth 1: compatible with reliable and
best-effort publishers, never queues stale images); the status topic transient-local (latched).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from polyact.deploy.config import BridgeConfig
from polyact.deploy.ros import RosUnavailableError
from polyact.deploy.ros.core import Bridge, Tick
from polyact.deploy.ros.messages import command_message, subscriptions


def import_rclpy() -> ModuleType:
    """rclpy, or a clear error saying how to get it."""
    try:
        import rclpy
    except ImportError as err:
        raise RosUnavailableError(
            f"ROS 2 (rclpy) is not importable ({err}); source your distribution first (e.g. `source "
            "/opt/ros/humble/setup.bash`) and use a virtual environment made with --system-site-packages. "
            "For ROS 1 set ros_version=1"
        ) from None
    return rclpy


class Ros2Bridge:
    """Subscriptions feeding a `Bridge` and publishers for its ticks, on a node of their own."""

    def __init__(self, rclpy: ModuleType, bridge: Bridge, cfg: BridgeConfig):
        from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
        from std_msgs.msg import Float64, String

        self.bridge, self.cfg = bridge, cfg
        self.node = rclpy.create_node(cfg.node_name)
        self.msg = {"PoseStamped": PoseStamped, "Twist": Twist, "TwistStamped": TwistStamped, "Float64": Float64}
        t = cfg.topics
        sensors, others = subscriptions(bridge, cfg)
        reliable = QoSProfile(depth=10)
        self.subscriptions = [
            self.node.create_subscription(kind, topic, callback, qos)
            for subs, qos in ((sensors, qos_profile_sensor_data), (others, reliable))
            for topic, kind, callback in subs
        ]
        kind = {"twist_stamped": TwistStamped, "twist": Twist, "pose": PoseStamped}[cfg.command.kind]
        self.command_pub = self.node.create_publisher(kind, t.command, QoSProfile(depth=1))
        self.gripper_pub = self.node.create_publisher(Float64, t.gripper_command, QoSProfile(depth=1))
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.status_pub = self.node.create_publisher(String, t.status, latched)
        self._string = String
        self.executor = MultiThreadedExecutor()
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, name="polyact-ros2", daemon=True)
        self._spinner.start()

    def publish(self, tick: Tick) -> None:
        """The tick's command (and gripper command, once there is one) as ROS messages."""
        message = command_message(self.msg, self.cfg, tick, _stamp(tick.stamp))
        if message is not None:
            self.command_pub.publish(message)
        if tick.command.gripper is not None:
            self.gripper_pub.publish(self.msg["Float64"](data=float(tick.command.gripper)))

    def status(self, status: dict[str, Any]) -> None:
        self.status_pub.publish(self._string(data=json.dumps(status)))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def run(bridge: Bridge, cfg: BridgeConfig, should_stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Drive the robot until `should_stop()`, rclpy shutdown or `cfg.duration_s`; the last command is a hold."""
    rclpy = import_rclpy()
    owned = not rclpy.ok()
    if owned:
        rclpy.init()
    adapter = Ros2Bridge(rclpy, bridge, cfg)
    try:
        return bridge.run(adapter.publish, lambda: should_stop() or not rclpy.ok(), adapter.status)
    finally:
        adapter.publish(bridge.final_hold())
        adapter.close()
        if owned:
            rclpy.try_shutdown()


def _stamp(seconds: float) -> Any:
    """A builtin_interfaces/Time of wall-clock seconds."""
    from builtin_interfaces.msg import Time

    whole = int(seconds)
    return Time(sec=whole, nanosec=int((seconds - whole) * 1e9))

"""The ROS 1 (rospy) adapter of the bridge: messages in -> `Bridge.sensors` calls, `Tick`s -> messages.

Everything that decides what the robot does lives in core.py; this file only translates.

rospy is not on PyPI: it comes with a ROS 1 installation (Debian: `apt-get install ros-core
python3-rospy python3-sensor-msgs python3-geometry-msgs python3-std-msgs`; a ROS distribution: source
its setup.bash). When it is not importable from this interpreter (a virtual environment without
system site-packages), `import_rospy` appends Debian's /usr/lib/python3/dist-packages to sys.path, at
the end, so the environment's own packages keep precedence. The interpreter must be the same Python
minor version as the system's.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from polyact.deploy.config import BridgeConfig
from polyact.deploy.ros import RosUnavailableError
from polyact.deploy.ros.core import Bridge, Tick
from polyact.deploy.ros.messages import command_message, subscriptions

SYSTEM_PACKAGES = "/usr/lib/python3/dist-packages"  # where Debian's python3-rospy installs rospy
RGB_BUFFER_BYTES = 1 << 24  # rospy's default 64 KiB receive buffer makes image topics lag


def import_rospy() -> ModuleType:
    """rospy, from this interpreter or from Debian's system packages; a clear error when ROS 1 is absent."""
    try:
        import rospy
    except ImportError:
        if os.path.isdir(SYSTEM_PACKAGES) and SYSTEM_PACKAGES not in sys.path:
            sys.path.append(SYSTEM_PACKAGES)
        try:
            import rospy
        except ImportError as err:
            raise RosUnavailableError(
                f"ROS 1 (rospy) is not importable ({err}); install it (Debian: apt-get install ros-core "
                "python3-rospy python3-sensor-msgs python3-geometry-msgs python3-std-msgs) or source your ROS "
                f"distribution's setup.bash; the adapter also looks in {SYSTEM_PACKAGES}. For ROS 2 set ros_version=2"
            ) from None
    return rospy


def init_node(rospy: ModuleType, name: str) -> None:
    """Start this process's node unless it runs one already (rospy allows one node per process).

    Signals stay Python's, so Ctrl-C raises KeyboardInterrupt and the caller stops the robot itself."""
    if not rospy.core.is_initialized():
        rospy.init_node(name, anonymous=False, disable_signals=True)


class Ros1Bridge:
    """Subscriptions feeding a `Bridge` and publishers for its ticks; `close()` unregisters them all."""

    def __init__(self, rospy: ModuleType, bridge: Bridge, cfg: BridgeConfig):
        from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
        from std_msgs.msg import Float64, String

        self.rospy, self.bridge, self.cfg = rospy, bridge, cfg
        self.msg = {"PoseStamped": PoseStamped, "Twist": Twist, "TwistStamped": TwistStamped, "Float64": Float64}
        t = cfg.topics
        sensors, others = subscriptions(bridge, cfg)
        self.subscribers = [
            rospy.Subscriber(topic, kind, callback, queue_size=1, buff_size=RGB_BUFFER_BYTES)
            for topic, kind, callback in sensors + others
        ]
        kind = {"twist_stamped": TwistStamped, "twist": Twist, "pose": PoseStamped}[cfg.command.kind]
        self.command_pub = rospy.Publisher(t.command, kind, queue_size=1)
        self.gripper_pub = rospy.Publisher(t.gripper_command, Float64, queue_size=1)
        self.status_pub = rospy.Publisher(t.status, String, queue_size=1, latch=True)
        self._string = String

    def publish(self, tick: Tick) -> None:
        """The tick's command (and gripper command, once there is one) as ROS messages."""
        message = command_message(self.msg, self.cfg, tick, self.rospy.Time.from_sec(tick.stamp))
        if message is not None:
            self.command_pub.publish(message)
        if tick.command.gripper is not None:
            self.gripper_pub.publish(self.msg["Float64"](data=tick.command.gripper))

    def status(self, status: dict[str, Any]) -> None:
        self.status_pub.publish(self._string(data=json.dumps(status)))

    def close(self) -> None:
        for subscriber in self.subscribers:
            subscriber.unregister()
        for publisher in (self.command_pub, self.gripper_pub, self.status_pub):
            publisher.unregister()


def run(bridge: Bridge, cfg: BridgeConfig, should_stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Drive the robot until `should_stop()`, ROS shutdown or `cfg.duration_s`; the last command is a hold."""
    rospy = import_rospy()
    init_node(rospy, cfg.node_name)
    adapter = Ros1Bridge(rospy, bridge, cfg)
    try:
        return bridge.run(adapter.publish, lambda: should_stop() or rospy.is_shutdown(), adapter.status)
    finally:
        adapter.publish(bridge.final_hold())
        adapter.close()

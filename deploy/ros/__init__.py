"""The ROS bridge: a ROS-free core (core.py) and thin adapters for ROS 1 (ros1.py) and ROS 2 (ros2.py)."""

from polyact.errors import PolyactError


class RosUnavailableError(PolyactError):
    """The ROS client library of the configured ROS version cannot be imported."""

"""`polyact ros`: the bridge node that drives a robot over ROS with a policy (docs/deploy.md).

    polyact ros policy=ws://gpu-box:8765 control_hz=10    # the policy behind `polyact serve`
    polyact ros policy=runs/x/policy control_hz=10         # the checkpoint in this process (needs torch)

The ROS library is imported before the policy is loaded, so a robot computer without ROS fails in a
second, not after loading a checkpoint. With a server URL nothing here imports torch or a simulator
(`pip install polyact[robot]`, docs/deploy.md).
"""

from __future__ import annotations

import logging
from typing import Any

from polyact.deploy.config import BridgeConfig, resolve_token
from polyact.deploy.ros.core import Bridge
from polyact.errors import PolyactError

log = logging.getLogger("polyact.deploy.bridge")


def open_policy(cfg: BridgeConfig) -> Any:
    """A PolicyClient for a server URL, or the checkpoint loaded in this process: both offer
    `metadata`, `connected` and `infer(observations)`."""
    if cfg.remote:
        from polyact.deploy.client import PolicyClient, ServerUnavailable

        try:
            return PolicyClient(cfg.policy, resolve_token(cfg.token), timeout=cfg.watchdog.request_timeout_s)
        except ServerUnavailable as err:
            raise PolyactError(f"{err} (start the server before the bridge: it needs the policy's metadata)") from None
    from polyact.deploy.policy import load_served_policy

    return load_served_policy(cfg.policy, cfg.spec, cfg.device, cfg.control_hz)


def adapter(ros_version: int) -> Any:
    """The ROS-version module (its `run(bridge, cfg)`), importing its client library now."""
    if ros_version == 1:
        from polyact.deploy.ros import ros1

        ros1.import_rospy()
        return ros1
    from polyact.deploy.ros import ros2

    ros2.import_rclpy()
    return ros2


def run(cfg: BridgeConfig) -> dict[str, Any]:
    """Run the bridge until Ctrl-C, ROS shutdown or `duration_s`; returns the loop's statistics."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ros = adapter(cfg.ros_version)
    policy = open_policy(cfg)
    try:
        bridge = Bridge(cfg, policy)
        log.info("bridge at %.1f Hz, %s policy %s", bridge.rate, "remote" if cfg.remote else "in-process", cfg.policy)
        try:
            stats = ros.run(bridge, cfg)
        except KeyboardInterrupt:
            stats = bridge.stats()
    finally:
        if hasattr(policy, "close"):
            policy.close()
    log.info("bridge stopped: %s", stats)
    return stats

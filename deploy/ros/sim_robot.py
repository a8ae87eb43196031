"""A simulated robot on ROS 1: a Meta-World task that publishes what a robot's drivers publish and moves
as an end-effector velocity controller would, so the bridge can be tested end to end without hardware.

    polyact ros sim env.tasks=reach-v3 rate_hz=10 log_path=sim.jsonl   (or python -m polyact.deploy.ros.sim_robot ...)

Every `rate_hz` period it steps the simulator once, then publishes (topics as the bridge reads them):
each camera's RGB (rgb8/bgr8), depth (32FC1 metres / 16UC1 millimetres) and CameraInfo; the end
effector's PoseStamped (identity orientation: Meta-World's hand does not turn); the gripper opening as
Float64 and the whole policy state as JointState (named by the task's state names); the goal as
Float32MultiArray; the instruction as String.

Command -> Meta-World action (a per-step mocap displacement, 1.0 = `linear_scale` metres):
- twist v (m/s): dx = v * (1 / rate_hz) / linear_scale, the displacement the twist asks for over one
  period (the angular part is ignored: the hand cannot turn);
- pose target p: dx = (p - hand) / linear_scale;
- gripper command g: the finger effort, as is (-1 open, +1 close);
Meta-World clips each displacement to [-1, 1], so the hand moves at most linear_scale * rate_hz m/s.
A motion command older than `command_timeout_s` stops the arm (dx = 0), as a real driver's watchdog does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from polyact.deploy.config import SimRobotConfig
from polyact.deploy.ros.convert import encode_image, intrinsics_to_ros
from polyact.deploy.ros.messages import camera_topics
from polyact.deploy.ros.ros1 import import_rospy, init_node

EPISODE_STEPS = 10**9  # a robot has no episodes: the simulated one runs until it is stopped


class SimRobot:
    """The simulator with its ROS 1 publishers and command subscribers."""

    def __init__(self, cfg: SimRobotConfig, rospy: Any):
        from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
        from sensor_msgs.msg import CameraInfo, Image, JointState
        from std_msgs.msg import Float32MultiArray, Float64, String

        from polyact.envs import make_env

        self.cfg, self.rospy = cfg, rospy
        self.env = make_env(cfg.env.tasks, dataclasses.replace(cfg.env, max_episode_steps=EPISODE_STEPS))
        self.obs, self.info = self.env.reset(seed=cfg.seed)
        self.reward = 0.0
        self.types = dict(
            Image=Image,
            CameraInfo=CameraInfo,
            PoseStamped=PoseStamped,
            JointState=JointState,
            Float32MultiArray=Float32MultiArray,
            Float64=Float64,
            String=String,
        )
        t, cams = cfg.topics, self.env.contract.camera_names

        def pub(topic: str, kind: type) -> Any:
            return rospy.Publisher(topic, kind, queue_size=1)

        self.rgb_pubs = {c: pub(topic, Image) for c, topic in camera_topics(t.rgb, cams).items()}
        self.depth_pubs = {c: pub(topic, Image) for c, topic in camera_topics(t.depth, cams).items()}
        self.info_pubs = {c: pub(topic, CameraInfo) for c, topic in camera_topics(t.camera_info, cams).items()}
        self.pose_pub, self.joint_pub = pub(t.pose, PoseStamped), pub(t.joint_state, JointState)
        self.gripper_pub = pub(t.gripper_state, Float64) if t.gripper_state else None
        self.goal_pub, self.instruction_pub = pub(t.goal, Float32MultiArray), pub(t.instruction, String)
        self._lock = threading.Lock()
        self._motion: tuple[str, np.ndarray, float] | None = None  # (kind, vector, arrival time)
        self._gripper = 0.0
        kind = {"twist_stamped": TwistStamped, "twist": Twist, "pose": PoseStamped}[cfg.command_kind]
        self.subscribers = [
            rospy.Subscriber(t.command, kind, self._on_command, queue_size=1),
            rospy.Subscriber(t.gripper_command, Float64, self._on_gripper, queue_size=1),
        ]

    def _on_command(self, msg: Any) -> None:
        if self.cfg.command_kind == "pose":
            p = msg.pose.position
            motion = ("pose", np.array([p.x, p.y, p.z]))
        else:
            v = (msg.twist if self.cfg.command_kind == "twist_stamped" else msg).linear
            motion = ("twist", np.array([v.x, v.y, v.z]))
        with self._lock:
            self._motion = (*motion, time.monotonic())

    def _on_gripper(self, msg: Any) -> None:
        with self._lock:
            self._gripper = float(msg.data)

    def action(self) -> np.ndarray:
        """The Meta-World action (dx, dy, dz, gripper) of the latest commands (module docstring)."""
        with self._lock:
            motion, gripper = self._motion, self._gripper
        delta = np.zeros(3)
        if motion is not None and time.monotonic() - motion[2] <= self.cfg.command_timeout_s:
            kind, vector, _ = motion
            hand = self.obs["state"][:3]
            displacement = vector / self.cfg.rate_hz if kind == "twist" else vector - hand
            delta = displacement / self.cfg.linear_scale
        if not np.isfinite(delta).all():
            delta = np.zeros(3)
        return np.clip(np.append(delta, gripper), -1.0, 1.0).astype(np.float32)

    def step(self) -> dict[str, Any]:
        """One control period: act, then publish the new state; returns the step's log record."""
        action = self.action()
        self.obs, self.reward, _, _, self.info = self.env.step(action)
        self.publish()
        hand, goal = self.obs["state"][:3], self.obs["goal"]
        return {
            "t": time.monotonic(),
            "hand": hand.tolist(),
            "goal": goal.tolist(),
            "distance": float(np.linalg.norm(hand - goal)),
            "reward": self.reward,
            "success": bool(self.info["success"]),
            "action": action.tolist(),
        }

    def publish(self) -> None:
        rospy, ty, obs = self.rospy, self.types, self.obs
        header = {"stamp": rospy.Time.now(), "frame_id": "world"}
        for camera in self.env.contract.camera_names:
            rgb = ty["Image"](**encode_image(obs[f"rgb/{camera}"], self.cfg.rgb_encoding))
            depth = ty["Image"](**encode_image(obs[f"depth/{camera}"], self.cfg.depth_encoding))
            for image in (rgb, depth):
                image.header.stamp, image.header.frame_id = header["stamp"], camera
            self.rgb_pubs[camera].publish(rgb)
            self.depth_pubs[camera].publish(depth)
            k = intrinsics_to_ros(obs[f"intrinsics/{camera}"])
            info = ty["CameraInfo"](height=rgb.height, width=rgb.width, K=k)
            info.header = rgb.header
            self.info_pubs[camera].publish(info)
        state = obs["state"]
        pose = ty["PoseStamped"]()
        pose.header.stamp, pose.header.frame_id = header["stamp"], header["frame_id"]
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = map(float, state[:3])
        pose.pose.orientation.w = 1.0
        self.pose_pub.publish(pose)
        if self.gripper_pub is not None:
            self.gripper_pub.publish(ty["Float64"](data=float(state[3])))
        joints = ty["JointState"](name=list(self.env.contract.state_names), position=state.tolist())
        joints.header.stamp = header["stamp"]
        self.joint_pub.publish(joints)
        self.goal_pub.publish(ty["Float32MultiArray"](data=obs["goal"].tolist()))
        self.instruction_pub.publish(ty["String"](data=obs["instruction"]))

    def close(self) -> None:
        for subscriber in self.subscribers:
            subscriber.unregister()
        self.env.close()


def run(cfg: SimRobotConfig) -> None:
    """Step and publish at `rate_hz` until ROS shuts down, Ctrl-C, SIGTERM or `duration_s`."""
    rospy = import_rospy()
    init_node(rospy, cfg.node_name)
    robot = SimRobot(cfg, rospy)
    rate, start = rospy.Rate(cfg.rate_hz), time.monotonic()
    with contextlib.ExitStack() as stack:
        stack.callback(robot.close)
        log = stack.enter_context(Path(cfg.log_path).open("w", buffering=1)) if cfg.log_path else None
        try:
            robot.publish()
            while not rospy.is_shutdown() and not (cfg.duration_s and time.monotonic() - start >= cfg.duration_s):
                rate.sleep()
                record = robot.step()
                if log is not None:
                    log.write(json.dumps(record) + "\n")  # a line per step, flushed: a kill loses nothing
        except (KeyboardInterrupt, rospy.ROSInterruptException):
            pass


def main(argv: list[str] | None = None) -> int:
    """`python -m polyact.deploy.ros.sim_robot key=value ...`; SIGTERM stops it as Ctrl-C does."""
    from polyact.config import load_config
    from polyact.errors import PolyactError

    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    try:
        run(load_config(SimRobotConfig, list(sys.argv[1:] if argv is None else argv)))
    except PolyactError as err:
        print(f"polyact.deploy.ros.sim_robot: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Configs of the deployment commands: `polyact serve`, `polyact ros` and the simulated robot.

Plain dataclasses that hydra holds as structured configs (see polyact/config.py), checked in
`__post_init__`. Every safety limit is here and nowhere else. Importing this module needs no torch and
no simulator (envs/config.py is plain data too), so the bridge starts fast on a robot computer that has
neither (tests/deploy/test_light.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from polyact.envs.catalog import resolve_tasks
from polyact.envs.config import EnvConfig
from polyact.errors import ConfigError, unknown_name

TOKEN_ENV = "POLYACT_TOKEN"
COMMAND_KINDS = ("twist_stamped", "twist", "pose")
STATE_SOURCES = ("pose", "joint_state")
ROS_VERSIONS = (1, 2)
RGB_ENCODINGS = ("rgb8", "bgr8")
DEPTH_ENCODINGS = ("32FC1", "16UC1")
SAFETY_RATES = (  # SafetyConfig's limits that must be positive
    "max_linear_speed",
    "max_linear_accel",
    "max_angular_speed",
    "max_angular_accel",
    "max_gripper_rate",
    "max_abs_action",
)


def resolve_token(token: str) -> str | None:
    """The shared token: the config's, else $POLYACT_TOKEN (keeps it off the command line), else none."""
    return token or os.environ.get(TOKEN_ENV) or None


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{name} must be a positive finite number, got {value}")


@dataclass
class ServeConfig:
    """`polyact serve`: a checkpoint behind a websocket (msgpack frames), batching concurrent clients.

    `policy` is a checkpoint directory (VLAPolicy.from_pretrained), which names its actions, their
    bounds and the control rate itself (env_spec.json); `spec` overrides that with the dataset it was
    trained on, an EnvSpec JSON file or a task name. Binds to loopback unless `host` says otherwise;
    with a `token` (or $POLYACT_TOKEN) clients must send `Authorization: Bearer <token>`. See
    docs/serve.md for the protocol.
    """

    policy: str = ""
    spec: str = ""  # '' = the checkpoint's own env_spec.json
    host: str = "127.0.0.1"  # 0.0.0.0 serves every interface: set a token then
    port: int = 8765  # 0 = any free port (printed on start)
    token: str = ""  # '' = $POLYACT_TOKEN when set, else no authentication
    max_batch: int = 8  # requests answered by one forward pass; 1 = no batching
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_payload_bytes: int = 0  # larger requests get an error reply; 0 = 2 x the largest valid request + 64 KiB
    max_connections: int = 64  # more are refused at the handshake (HTTP 503)
    device: str = "cpu"
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    control_hz: float = 0.0  # control rate advertised to clients; 0 = the spec's

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"port must be in [0, 65535], got {self.port}")
        if self.max_batch < 1 or self.max_connections < 1:
            raise ConfigError(
                f"need max_batch >= 1 and max_connections >= 1, got {self.max_batch} and {self.max_connections}"
            )
        if not (0 <= self.max_wait_ms < math.inf):
            raise ConfigError(f"max_wait_ms must be a finite number >= 0, got {self.max_wait_ms}")
        if self.max_payload_bytes < 0 or self.threads < 0 or not (0 <= self.control_hz < math.inf):
            raise ConfigError(
                "max_payload_bytes, threads and control_hz must be >= 0 (0 = the default), got "
                f"{self.max_payload_bytes}, {self.threads} and {self.control_hz}"
            )


@dataclass
class TopicsConfig:
    """ROS topic names; `{camera}` stands for each camera the policy reads (e.g. corner)."""

    rgb: str = "/polyact/{camera}/rgb"  # sensor_msgs/Image, rgb8 or bgr8
    depth: str = "/polyact/{camera}/depth"  # sensor_msgs/Image, 32FC1 metres or 16UC1 millimetres (if read)
    camera_info: str = "/polyact/{camera}/camera_info"  # sensor_msgs/CameraInfo, K (if the policy reads depth)
    pose: str = "/polyact/ee_pose"  # geometry_msgs/PoseStamped: end effector in the world frame, metres
    gripper_state: str = "/polyact/gripper_state"  # std_msgs/Float64 ('' = the state has no gripper entry)
    joint_state: str = "/polyact/joint_states"  # sensor_msgs/JointState (state_source=joint_state)
    goal: str = "/polyact/goal"  # std_msgs/Float32MultiArray (policies whose spec has goal names)
    instruction: str = "/polyact/instruction"  # std_msgs/String
    command: str = "/polyact/cmd"  # geometry_msgs/TwistStamped, Twist or PoseStamped (command.kind)
    gripper_command: str = "/polyact/gripper_cmd"  # std_msgs/Float64
    estop: str = "/polyact/estop"  # std_msgs/Bool: true latches a stop until a reset
    reset: str = "/polyact/reset"  # std_msgs/Empty: clears a latched e-stop once the e-stop reads false
    status: str = "/polyact/bridge_status"  # std_msgs/String, JSON counters, 1 Hz and on every mode change


@dataclass
class CommandConfig:
    """How one policy action (A,) becomes a robot command. Defaults: Meta-World's (dx, dy, dz, gripper)."""

    kind: str = "twist_stamped"  # twist_stamped | twist | pose (a target pose one control step ahead)
    frame_id: str = "world"
    linear: list[int] = field(default_factory=lambda: [0, 1, 2])  # action indices of the x, y, z displacement
    linear_scale: float = 0.01  # metres per action unit per control step (Meta-World: 1.0 = 1 cm)
    angular: list[int] = field(default_factory=list)  # action indices of roll, pitch, yaw rotation ([] = none)
    angular_scale: float = 0.0  # radians per action unit per control step
    gripper: int = 3  # action index of the gripper (-1 = no gripper command)
    gripper_scale: float = 1.0  # gripper command = gripper_offset + gripper_scale * action
    gripper_offset: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in COMMAND_KINDS:
            raise unknown_name("command kind (command.kind)", self.kind, COMMAND_KINDS)
        if len(self.linear) != 3 or self.angular and len(self.angular) != 3:
            raise ConfigError(
                f"command.linear needs 3 action indices and command.angular 0 or 3; got {self.linear}, {self.angular}"
            )
        used = [*self.linear, *self.angular, *([self.gripper] if self.gripper >= 0 else [])]
        if min(used) < 0 or len(set(used)) != len(used):
            raise ConfigError(f"command action indices must be distinct and >= 0, got {used}")
        _positive(**{"command.linear_scale": self.linear_scale})
        if self.angular:
            _positive(**{"command.angular_scale": self.angular_scale})

    def indices(self) -> list[int]:
        return [*self.linear, *self.angular, *([self.gripper] if self.gripper >= 0 else [])]


@dataclass
class SafetyConfig:
    """Limits between the policy and the robot. The defaults fit the simulated Meta-World robot (its
    reachable box); set them for your robot and cell before deploying on hardware."""

    workspace_low: list[float] = field(default_factory=lambda: [-0.5, 0.4, 0.05])  # metres, world frame
    workspace_high: list[float] = field(default_factory=lambda: [0.5, 1.0, 0.5])
    max_linear_speed: float = 0.25  # m/s, norm of the end-effector velocity
    max_linear_accel: float = 2.5  # m/s^2, change of commanded velocity (stops are exempt)
    max_angular_speed: float = 0.5  # rad/s
    max_angular_accel: float = 5.0  # rad/s^2
    gripper_min: float = -1.0  # gripper command range
    gripper_max: float = 1.0
    max_gripper_rate: float = 10.0  # gripper command units per second
    max_abs_action: float = 10.0  # raw actions beyond this (action units) are absurd: hold, count, log

    def __post_init__(self) -> None:
        if len(self.workspace_low) != 3 or len(self.workspace_high) != 3:
            raise ConfigError("safety.workspace_low and safety.workspace_high need 3 values (x, y, z metres)")
        if not all(lo < hi for lo, hi in zip(self.workspace_low, self.workspace_high, strict=True)):
            raise ConfigError(f"need workspace_low < workspace_high, got {self.workspace_low}, {self.workspace_high}")
        _positive(**{f"safety.{k}": getattr(self, k) for k in SAFETY_RATES})
        if not self.gripper_min < self.gripper_max:
            raise ConfigError(f"need gripper_min < gripper_max, got {self.gripper_min}, {self.gripper_max}")


@dataclass
class WatchdogConfig:
    """When the bridge stops trusting its inputs and holds the robot instead."""

    max_observation_age_s: float = 0.5  # a camera, pose or state message older than this: hold
    max_action_age_s: float = 1.0  # an action planned from an observation older than this: hold
    request_timeout_s: float = 2.0  # a policy request that takes longer fails
    reconnect_interval_s: float = 0.5  # wait between attempts after a failed request

    def __post_init__(self) -> None:
        _positive(**{f"watchdog.{k}": v for k, v in vars(self).items()})


@dataclass
class BridgeConfig:
    """`polyact ros`: drive a robot over ROS with a policy, at a fixed rate, through the safety layer.

    `policy` is a server URL (ws://host:port, from `polyact serve`) or a checkpoint directory run in
    this process (`spec` then as for serve). Sensors come in on `topics.*`; chunks are requested ahead
    of time, in the background; commands go out every control period, or holds when an observation is
    stale, the policy is late or gone, an action is not finite, or the e-stop is latched. Every safety
    limit is under `safety.*`. See docs/deploy.md.
    """

    policy: str = "ws://127.0.0.1:8765"
    spec: str = ""  # in-process policy only: dataset, EnvSpec JSON or task name ('' = the checkpoint's own)
    token: str = ""  # '' = $POLYACT_TOKEN when set
    device: str = "cpu"  # in-process policy only
    ros_version: int = 1
    node_name: str = "polyact_bridge"
    control_hz: float = 0.0  # 0 = the policy's control rate
    request_ahead: int = 0  # ask for the next chunk this many steps early; 0 = from the measured latency
    state_source: str = "pose"  # pose: [x, y, z(, qx, qy, qz, qw)(, gripper)]; joint_state: named joints
    state_orientation: bool = False  # pose: the state includes the orientation quaternion
    state_joints: list[str] = field(default_factory=list)  # joint_state: names in state order ([] = state names)
    instruction: str = ""  # a fixed instruction ('' = the instruction topic's)
    duration_s: float = 0.0  # stop after this long; 0 = until shut down
    log_path: str = ""  # write every control tick as JSON lines here on exit ('' = no log)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    command: CommandConfig = field(default_factory=CommandConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)

    def __post_init__(self) -> None:
        if self.ros_version not in ROS_VERSIONS:
            raise unknown_name("ROS version (ros_version)", str(self.ros_version), map(str, ROS_VERSIONS))
        if self.state_source not in STATE_SOURCES:
            raise unknown_name("state source (state_source)", self.state_source, STATE_SOURCES)
        if self.control_hz < 0 or self.request_ahead < 0 or self.duration_s < 0:
            raise ConfigError("control_hz, request_ahead and duration_s must be >= 0")
        if not self.policy:
            raise ConfigError("policy= is required: a server URL (ws://host:port) or a checkpoint directory")

    @property
    def remote(self) -> bool:
        return self.policy.startswith(("ws://", "wss://"))


@dataclass
class SimRobotConfig:
    """`python -m polyact.deploy.ros.sim_robot`: a simulated robot on ROS 1. A Meta-World task (`env`:
    one task, its cameras and resolution) steps in real time at `rate_hz`, publishes camera images,
    depth, camera info, end-effector pose, gripper state, joint states (the policy state, named by the
    spec), goal and instruction, and executes twist or pose commands and gripper commands (topics as the
    bridge's). A command older than `command_timeout_s` stops the arm. A robot has no episodes:
    `env.max_episode_steps` is ignored.
    """

    env: EnvConfig = field(default_factory=lambda: EnvConfig(tasks="reach-v3", cameras=["corner"], height=32, width=32))
    seed: int = 1_000_000  # the episode's reset seed (evaluation seeds start at 1,000,000)
    rate_hz: float = 10.0
    rgb_encoding: str = "rgb8"
    depth_encoding: str = "32FC1"
    command_kind: str = "twist_stamped"
    linear_scale: float = 0.01  # metres per Meta-World action unit (its mocap moves 1 cm per unit)
    command_timeout_s: float = 0.5
    node_name: str = "polyact_sim"
    duration_s: float = 0.0  # 0 = until shut down
    log_path: str = ""  # write every step (JSON lines: end-effector, goal, distance, success, action) on exit
    topics: TopicsConfig = field(default_factory=TopicsConfig)

    def __post_init__(self) -> None:
        suite, tasks = resolve_tasks(self.env.tasks)
        if suite.name != "metaworld" or tasks != (self.env.tasks,):
            raise ConfigError(
                f"the simulated robot runs one Meta-World task (env.tasks=reach-v3; `polyact tasks MT50` lists "
                f"them), got env.tasks={self.env.tasks!r}"
            )
        if self.rgb_encoding not in RGB_ENCODINGS:
            raise unknown_name("rgb encoding (rgb_encoding)", self.rgb_encoding, RGB_ENCODINGS)
        if self.depth_encoding not in DEPTH_ENCODINGS:
            raise unknown_name("depth encoding (depth_encoding)", self.depth_encoding, DEPTH_ENCODINGS)
        if self.command_kind not in COMMAND_KINDS:
            raise unknown_name("command kind (command_kind)", self.command_kind, COMMAND_KINDS)
        _positive(rate_hz=self.rate_hz, linear_scale=self.linear_scale, command_timeout_s=self.command_timeout_s)
        if self.duration_s < 0:
            raise ConfigError(f"duration_s must be >= 0, got {self.duration_s}")

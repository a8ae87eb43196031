"""The observation/action contract that every polyact environment, dataset, policy and robot speaks.

This docstring is the one place the contract is written down. Datasets, policies, evaluation and
deployment read observations only through the keys below, so they work on every suite unchanged.
The module needs numpy alone, so the robot side, the storage layer and the policies can all import it
without a simulator or torch (docs/architecture.md); gymnasium spaces are built in `envs/spaces.py`.

Observation: a dict for one step (no batch axis)

    key                    dtype    shape       meaning
    rgb/<camera>           uint8    (H, W, 3)   colour image, row 0 at the top
    depth/<camera>         float32  (H, W)      z-depth (distance along the optical axis), metres
    intrinsics/<camera>    float32  (3, 3)      pinhole matrix K: pixel (row r, col c) has its centre at
                                                (u, v) = (c + 0.5, r + 0.5), and a point (x, y, z) in the
                                                camera frame lands on u = fx x / z + cx, v = fy y / z + cy
    extrinsics/<camera>    float32  (4, 4)      camera-to-world transform, OpenCV camera axes
                                                (x right, y down, z forward); updated every step, so
                                                cameras mounted on the robot are described too
    state                  float32  (S,)        proprioception, named by EnvSpec.state_names
                                                (end-effector position in metres, gripper opening, ...)
    goal                   float32  (G,)        what success depends on that no camera shows, named by
                                                EnvSpec.goal_names (Meta-World: the goal position, which is
                                                an invisible or pixel-sized site); absent when G == 0
    subgoal                float32  (A,)        the next sub-goal, as an action of this space: only from an
                                                environment with a sub-goal oracle (EnvSpec.subgoal;
                                                rlbench_like's env.subgoal_oracle), for sub-goal
                                                conditioned policies
    instruction            str                  the episode's natural-language instruction

Action: float32 (A,), one control step. EnvSpec.action gives each dimension's name, bounds and the
semantics in words; environments clip to the bounds and raise ContractError for a wrong shape or a
non-finite value.

Step info: `info["success"]` (bool, the task's own success test on simulator state, true at any step
counts) and `info["privileged"]` (suite-specific simulator state for scripted experts; never given to
policies).

Every camera yields rgb, depth, intrinsics and extrinsics. World frame: z up, metres.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from polyact.errors import ContractError

INSTRUCTION_MAX_CHARS = 256
SUBGOAL_KEY = "subgoal"  # the next sub-goal as an action: a keyframe dataset feature, a sub-goal oracle observation


@dataclass(frozen=True)
class FeatureSpec:
    """The dtype and per-step shape of one observation or action feature."""

    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSpec:
        return cls(dtype=str(d["dtype"]), shape=tuple(int(s) for s in d["shape"]))


@dataclass(frozen=True)
class CameraSpec:
    name: str
    height: int
    width: int


@dataclass(frozen=True)
class ActionSpec:
    """Names, bounds and meaning of each action dimension."""

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    semantics: str

    @property
    def dim(self) -> int:
        return len(self.names)

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.low) == len(self.high)):
            raise ContractError(
                f"action spec has {len(self.names)} names, {len(self.low)} lows and {len(self.high)} highs; "
                "they must be equal"
            )


@dataclass(frozen=True)
class EnvSpec:
    """What an environment observes and accepts: enough to build a policy or a dataset for it."""

    suite: str
    tasks: tuple[str, ...]
    cameras: tuple[CameraSpec, ...]
    state_names: tuple[str, ...]
    goal_names: tuple[str, ...]
    action: ActionSpec
    control_hz: float
    max_episode_steps: int
    notes: dict[str, str] = field(default_factory=dict)
    subgoal: bool = False  # observations carry `subgoal` (a sub-goal oracle's)

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    def features(self) -> dict[str, FeatureSpec]:
        """Array features of an observation (everything but the instruction string)."""
        out: dict[str, FeatureSpec] = {}
        for cam in self.cameras:
            out[f"rgb/{cam.name}"] = FeatureSpec("uint8", (cam.height, cam.width, 3))
            out[f"depth/{cam.name}"] = FeatureSpec("float32", (cam.height, cam.width))
            out[f"intrinsics/{cam.name}"] = FeatureSpec("float32", (3, 3))
            out[f"extrinsics/{cam.name}"] = FeatureSpec("float32", (4, 4))
        out["state"] = FeatureSpec("float32", (len(self.state_names),))
        if self.goal_names:
            out["goal"] = FeatureSpec("float32", (len(self.goal_names),))
        if self.subgoal:
            out[SUBGOAL_KEY] = FeatureSpec("float32", (self.action.dim,))
        return out

    def action_feature(self) -> FeatureSpec:
        return FeatureSpec("float32", (self.action.dim,))

    def check_observation(self, obs: Mapping[str, Any]) -> None:
        """Raise ContractError naming the first key whose presence, dtype or shape is wrong."""
        expected = self.features()
        missing = [k for k in [*expected, "instruction"] if k not in obs]
        if missing:
            raise ContractError(f"observation lacks {missing}; expected keys: {sorted([*expected, 'instruction'])}")
        unexpected = sorted(set(obs) - set(expected) - {"instruction"})
        if unexpected:
            raise ContractError(f"observation has keys outside the contract: {unexpected}")
        for key, feat in expected.items():
            check_array(key, obs[key], feat)
        instruction = obs["instruction"]
        if not isinstance(instruction, str) or not instruction or len(instruction) > INSTRUCTION_MAX_CHARS:
            raise ContractError(
                f"instruction must be a non-empty str of at most {INSTRUCTION_MAX_CHARS} characters, "
                f"got {instruction!r:.80}"
            )

    def check_action(self, action: Any) -> np.ndarray:
        """The action as float32 (A,), or ContractError if its shape is wrong or a value is not finite."""
        arr = np.asarray(action)
        if arr.shape != (self.action.dim,):
            raise ContractError(
                f"action has shape {arr.shape}; expected ({self.action.dim},) = {list(self.action.names)}"
            )
        if not np.issubdtype(arr.dtype, np.number):
            raise ContractError(f"action has dtype {arr.dtype}; expected a float array")
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise ContractError(f"action has non-finite values: {arr.tolist()}")
        return arr

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cameras"] = [asdict(c) for c in self.cameras]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnvSpec:
        a = d["action"]
        return cls(
            suite=str(d["suite"]),
            tasks=tuple(d["tasks"]),
            cameras=tuple(CameraSpec(str(c["name"]), int(c["height"]), int(c["width"])) for c in d["cameras"]),
            state_names=tuple(d["state_names"]),
            goal_names=tuple(d["goal_names"]),
            action=ActionSpec(tuple(a["names"]), tuple(a["low"]), tuple(a["high"]), str(a["semantics"])),
            control_hz=float(d["control_hz"]),
            max_episode_steps=int(d["max_episode_steps"]),
            notes=dict(d.get("notes", {})),
            subgoal=bool(d.get("subgoal", False)),
        )


def check_array(key: str, value: Any, feat: FeatureSpec) -> None:
    """Raise ContractError if `value` is not an ndarray of exactly `feat`'s dtype and shape."""
    if not isinstance(value, np.ndarray):
        raise ContractError(f"{key}: expected a numpy array {feat.dtype}{list(feat.shape)}, got {type(value).__name__}")
    if value.dtype != np.dtype(feat.dtype) or value.shape != feat.shape:
        raise ContractError(f"{key}: got {value.dtype}{list(value.shape)}, expected {feat.dtype}{list(feat.shape)}")


@dataclass(frozen=True)
class PolicyRequirements:
    """What a trained policy reads and writes; evaluation, serving and the bridge refuse an environment
    or a robot that does not provide it.

    `image_size` is (height, width), or None for a policy that resizes whatever it gets or reads no
    camera (`cameras` empty: a state-only policy reads the state, the goal and the instruction); `depth` says
    whether it reads depth and intrinsics (SpatialVLA's Ego3D encoding); `camera_poses` whether it reads
    intrinsics and extrinsics (heatmap translation projects world points into the cameras; sub-goal maps
    are evaluated at the pixels' world points); `subgoal` whether it is conditioned on sub-goals, which it
    reads from the observation when that has one (`optional_inputs`) and otherwise gets from its sub-goal
    predictor.
    """

    cameras: tuple[str, ...]
    action_dim: int
    state_dim: int
    goal_dim: int
    image_size: tuple[int, int] | None = None
    depth: bool = False
    action_names: tuple[str, ...] = ()  # empty: unknown (a policy saved without its environment spec)
    camera_poses: bool = False
    subgoal: bool = False

    @classmethod
    def of(cls, config: Any, env_spec: EnvSpec | None = None) -> PolicyRequirements:
        """The requirements of a policy config (`polyact.policies.PolicyConfig`, read by attribute so
        that this module needs no torch) and of the environment spec it was trained for, if known."""
        size = (int(config.image_height), int(config.image_width)) if config.image_height else None
        return cls(
            cameras=tuple(config.cameras),
            action_dim=int(config.action_dim),
            state_dim=int(config.state_dim),
            goal_dim=int(config.goal_dim),
            image_size=size,
            depth=bool(config.vision.depth),
            action_names=tuple(env_spec.action.names) if env_spec is not None else (),
            camera_poses=getattr(config, "translation", "head") == "heatmap"
            or getattr(config, "subgoal_conditioning", "none") != "none",
            subgoal=getattr(config, "subgoal_conditioning", "none") != "none",
        )

    def inputs(self) -> dict[str, FeatureSpec]:
        """The observation keys the policy reads, with dtype and per-step shape: the one answer to
        "which keys does this policy need" for training windows, serving and the bridge."""
        if self.image_size is None and self.cameras:
            raise ContractError("a policy that resizes its images has no fixed input shapes")
        inputs = {f"rgb/{cam}": FeatureSpec("uint8", (*self.image_size, 3)) for cam in self.cameras}
        if self.depth:
            for cam in self.cameras:
                inputs[f"depth/{cam}"] = FeatureSpec("float32", self.image_size)
                inputs[f"intrinsics/{cam}"] = FeatureSpec("float32", (3, 3))
        if self.camera_poses:
            for cam in self.cameras:
                inputs[f"intrinsics/{cam}"] = FeatureSpec("float32", (3, 3))
                inputs[f"extrinsics/{cam}"] = FeatureSpec("float32", (4, 4))
        inputs["state"] = FeatureSpec("float32", (self.state_dim,))
        if self.goal_dim:
            inputs["goal"] = FeatureSpec("float32", (self.goal_dim,))
        return inputs

    def optional_inputs(self) -> dict[str, FeatureSpec]:
        """The observation keys the policy reads when they are there and does without otherwise: a sub-goal
        conditioned policy's `subgoal` (a sub-goal oracle's; without one, its predictor gives the sub-goal)."""
        return {SUBGOAL_KEY: FeatureSpec("float32", (self.action_dim,))} if self.subgoal else {}


def check_compatible(req: PolicyRequirements | None, spec: EnvSpec, policy_name: str = "the policy") -> None:
    """Raise ContractError listing every way `spec` differs from what the policy expects.

    Called before any worker starts or any robot moves, so a checkpoint for another camera set, action
    space, goal setting or suite fails in seconds with the fix in the message.
    """
    if req is None:
        return
    problems = []
    missing = [c for c in req.cameras if c not in spec.camera_names]
    if missing:
        problems.append(
            f"it reads cameras {list(req.cameras)} but the environment renders {list(spec.camera_names)} "
            f"(missing {missing}; set env.cameras=[{','.join(req.cameras)}])"
        )
    if req.action_dim != spec.action.dim:
        problems.append(
            f"it outputs {req.action_dim}-D actions but {spec.suite} takes {spec.action.dim}-D actions "
            f"({', '.join(spec.action.names)})"
        )
    elif req.action_names and tuple(req.action_names) != tuple(spec.action.names):
        mode = spec.notes.get("action_mode", "")
        problems.append(
            f"it outputs actions ({', '.join(req.action_names)}) but the environment"
            f"{f' (action mode {mode})' if mode else ''} takes ({', '.join(spec.action.names)}) "
            "(set env.action_mode to the mode of its training data)"
        )
    if req.state_dim != len(spec.state_names):
        problems.append(f"it reads a {req.state_dim}-D state but {spec.suite} gives {len(spec.state_names)}-D")
    if req.goal_dim and not spec.goal_names:
        problems.append(
            f"it reads the {req.goal_dim}-D goal (privileged-goal protocol) but the environment withholds it "
            "(set env.goal=true, or train a goal-free policy: env.goal=false when collecting, or policy.goal=false)"
        )
    elif spec.goal_names and not req.goal_dim:
        problems.append(
            f"it was trained without the goal (goal-free protocol) but the environment gives a "
            f"{len(spec.goal_names)}-D goal (set env.goal=false)"
        )
    elif req.goal_dim != len(spec.goal_names):
        problems.append(f"it reads a {req.goal_dim}-D goal but {spec.suite} gives {len(spec.goal_names)}-D")
    if spec.subgoal and not req.subgoal:
        problems.append(
            "the environment gives sub-goals (env.subgoal_oracle=true) but the policy is not conditioned on them and "
            "would ignore them (evaluate it without env.subgoal_oracle, or a policy trained with "
            "policy.subgoal_conditioning=gravmap)"
        )
    if req.image_size is not None and spec.cameras:
        size = (spec.cameras[0].height, spec.cameras[0].width)
        if tuple(req.image_size) != size:
            h, w = req.image_size
            problems.append(
                f"it was trained on {h}x{w} images but the environment renders {size[0]}x{size[1]} "
                f"(set env.height={h} env.width={w})"
            )
    if problems:
        raise ContractError(f"{policy_name} does not fit {spec.suite} task {spec.tasks[0]}: " + "; ".join(problems))


def intrinsics_from_fovy(fovy_degrees: float, height: int, width: int) -> np.ndarray:
    """Pinhole K, in the contract's pixel convention, of a camera with vertical field of view `fovy`
    and square pixels (MuJoCo's camera model)."""
    fy = 0.5 * height / np.tan(np.deg2rad(fovy_degrees) / 2.0)
    return np.array([[fy, 0.0, width / 2.0], [0.0, fy, height / 2.0], [0.0, 0.0, 1.0]], dtype=np.float32)

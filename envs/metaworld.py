"""Meta-World v3 (the `metaworld` package) behind the polyact contract, with its scripted experts.

What this adds to metaworld's own environments:
- seeding that holds: metaworld ignores `reset(seed=)` (its tracker, #555) and draws goal positions from
  the global numpy RNG; here `reset(seed=s)` seeds the task's own generator, so the same seed gives
  the same initial state and first frame in any process;
- the goal position in observations (`goal`) unless `env.goal=false`: success depends on it and it is an
  invisible or pixel-sized site (metaworld's MT benchmarks observe it too), but it is privileged, and the
  published image-based results withhold it;
- `corner2_lerobot`, corner2 where LeRobot's MetaWorld environment places it (docs/eval.md);
- upright images: metaworld's `corner*` cameras render upside down under MuJoCo 3; they are rolled
  180 degrees about their optical axis in the model, so images and extrinsics stay consistent;
- fast offscreen RGB-D rendering (see rendering.py) and explicit closing of GL contexts.
"""

from __future__ import annotations

import warnings
from typing import Any

import metaworld  # noqa: F401  (registers metaworld's gymnasium ids; imports its task classes)
import mujoco
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS, ML10_V3, ML45_V3, MT10_V3
from metaworld.policies import ENV_POLICY_MAP

from polyact.contract import ActionSpec, CameraSpec, EnvSpec
from polyact.envs.base import PolyactEnv
from polyact.envs.config import EnvConfig
from polyact.envs.metaworld_instructions import INSTRUCTIONS
from polyact.envs.registry import Suite
from polyact.errors import ConfigError, unknown_name

# envs/catalog.py repeats these names and CAMERAS for checking configs without metaworld (kept equal by
# tests/envs/test_catalog.py)
TASKS: tuple[str, ...] = tuple(ALL_V3_ENVIRONMENTS)
TASK_SETS: dict[str, tuple[str, ...]] = {
    "MT10": tuple(MT10_V3),
    "MT50": TASKS,
    "ML10-train": tuple(ML10_V3["train"]),
    "ML10-test": tuple(ML10_V3["test"]),
    "ML45-train": tuple(ML45_V3["train"]),
    "ML45-test": tuple(ML45_V3["test"]),
}
CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV", "corner2_lerobot")
# LeRobot's MetaWorld environment (the published SmolVLA, pi0 and Evo-1 numbers) moves corner2 closer to the
# table (huggingface/lerobot src/lerobot/envs/metaworld.py:155); `corner2_lerobot` is that camera.
LEROBOT_CORNER2_POSITION = (0.75, 0.075, 0.7)
DEFAULT_CAMERAS = ("corner",)
_UPSIDE_DOWN_CAMERAS = ("corner", "corner2", "corner3", "corner4")
MAX_EPISODE_STEPS = 500

ACTION = ActionSpec(
    names=("dx", "dy", "dz", "gripper"),
    low=(-1.0, -1.0, -1.0, -1.0),
    high=(1.0, 1.0, 1.0, 1.0),
    semantics=(
        "dx, dy, dz: end-effector (mocap) displacement in the world frame, 1.0 = 1 cm per step, clipped to "
        "[-1, 1] and to the reachable box; gripper: finger effort, -1 opens fully, +1 closes fully"
    ),
)
STATE_NAMES = ("ee_x", "ee_y", "ee_z", "gripper_opening")
GOAL_NAMES = ("goal_x", "goal_y", "goal_z")


def _roll_camera_180(model: mujoco.MjModel, name: str) -> None:
    cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    rolled = np.empty(4)
    mujoco.mju_mulQuat(rolled, model.cam_quat[cam_id].copy(), np.array([0.0, 0.0, 0.0, 1.0]))
    model.cam_quat[cam_id] = rolled


def metaworld_spec(task: str, cfg: EnvConfig, control_hz: float) -> EnvSpec:
    cameras = tuple(cfg.cameras) or DEFAULT_CAMERAS
    for cam in cameras:
        if cam not in CAMERAS:
            raise unknown_name("Meta-World camera", cam, CAMERAS)
    return EnvSpec(
        suite="metaworld",
        tasks=(task,),
        cameras=tuple(CameraSpec(c, cfg.height, cfg.width) for c in cameras),
        state_names=STATE_NAMES,
        goal_names=GOAL_NAMES if cfg.goal else (),
        action=ACTION,
        control_hz=control_hz,
        max_episode_steps=cfg.max_episode_steps or MAX_EPISODE_STEPS,
        notes={
            "state": "end-effector (hand) position in metres, world frame; gripper opening in [0, 1] (1 = open)",
            "goal": "the task's goal position in metres, world frame (a hidden or pixel-sized site)"
            if cfg.goal
            else "withheld (env.goal=false): the policy sees the cameras and the 4-D hand state only",
        },
    )


class MetaWorldEnv(PolyactEnv):
    """One Meta-World v3 task; `reset(seed=s)` fixes its object and goal positions."""

    def __init__(self, task: str, cfg: EnvConfig):
        if task not in ALL_V3_ENVIRONMENTS:
            raise unknown_name("Meta-World task", task, TASKS)
        if cfg.action_mode != "default":
            raise unknown_name("Meta-World action mode", cfg.action_mode, ["default"])
        mw = ALL_V3_ENVIRONMENTS[task]()
        # Full observability puts the goal in metaworld's own observation, which its experts read;
        # the cached observation space must be rebuilt or metaworld clips the goal to zero.
        mw._partially_observable = False
        del mw.sawyer_observation_space
        mw._set_task_called = True
        mw._freeze_rand_vec = False
        mw.seeded_rand_vec = True
        spec = metaworld_spec(task, cfg, control_hz=1.0 / (mw.frame_skip * mw.model.opt.timestep))
        mw.max_path_length = spec.max_episode_steps
        for cam in _UPSIDE_DOWN_CAMERAS:
            _roll_camera_180(mw.model, cam)
        sources = {}
        if "corner2_lerobot" in spec.camera_names:
            if "corner2" in spec.camera_names:
                raise ConfigError("corner2_lerobot is corner2 moved (LeRobot's placement): use one of them, not both")
            mw.model.cam_pos[mujoco.mj_name2id(mw.model, mujoco.mjtObj.mjOBJ_CAMERA, "corner2")] = (
                LEROBOT_CORNER2_POSITION
            )
            sources["corner2_lerobot"] = "corner2"
        self._mw = mw
        self._mw_obs = np.zeros(39)
        self._mw_info: dict[str, Any] = {}
        self._mw_reward = 0.0
        super().__init__(spec, task, mw.model, mw.data, cfg.render_quality, camera_sources=sources)

    def _reset_sim(self, seed: int, options: dict[str, Any]) -> str:
        mw = self._mw
        mw.seed(seed)
        goal_vector = options.pop("goal_vector", None)
        if options:
            raise unknown_name("reset option", next(iter(options)), ["goal_vector"])
        # A goal vector from metaworld's benchmark task list (its official protocol) overrides the seed's.
        mw._freeze_rand_vec = goal_vector is not None
        if goal_vector is not None:
            mw._last_rand_vec = np.asarray(goal_vector, dtype=np.float64)
        self._mw_obs, _ = mw.reset()
        self._mw_info = {"success": 0.0}
        self._mw_reward = 0.0
        paraphrases = INSTRUCTIONS[self.task]
        return paraphrases[seed % len(paraphrases)]

    def _apply_action(self, action: np.ndarray) -> None:
        self._mw_obs, self._mw_reward, _, _, self._mw_info = self._mw.step(action)

    def _proprio(self) -> np.ndarray:
        return self._mw_obs[:4]

    def _goal(self) -> np.ndarray:
        return np.asarray(self._mw._target_pos)

    def _success(self) -> bool:
        return bool(self._mw_info["success"])

    def _reward(self) -> float:
        return float(self._mw_reward)

    def _privileged(self) -> np.ndarray:
        return self._mw_obs.copy()

    def close(self) -> None:
        super().close()
        self._mw.close()


class MetaWorldExpert:
    """metaworld's scripted policy for the task, reading the privileged 39-D state."""

    def __init__(self, task: str):
        # metaworld's policies warn on every action whose proportional gain saturates; that is by design
        warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", module="metaworld")
        self._policy = ENV_POLICY_MAP[task]()

    def reset(self) -> None:
        """The scripted policies are stateless."""

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        action = self._policy.get_action(info["privileged"])
        return np.clip(np.asarray(action, np.float32), -1.0, 1.0)


SUITE = Suite(
    name="metaworld",
    task_sets=TASK_SETS,
    tasks=TASKS,
    make_env=MetaWorldEnv,
    make_expert=lambda env: MetaWorldExpert(env.task),
    cameras=CAMERAS,
)

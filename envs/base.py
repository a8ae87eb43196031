"""What every polyact environment shares: camera observations, the contract, closing the renderer.

A suite subclasses `PolyactEnv`, builds its MuJoCo model, and implements `_reset_sim`, `_apply_action`,
`_proprio`, `_goal`, `_subgoal`, `_success` and `_privileged`; this class turns those into contract observations.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from polyact.contract import SUBGOAL_KEY, EnvSpec, intrinsics_from_fovy
from polyact.envs.catalog import Quality
from polyact.envs.rendering import Renderer
from polyact.envs.spaces import action_space, observation_space
from polyact.errors import unknown_name

# MuJoCo cameras look down -z with y up; OpenCV cameras look down +z with y down.
_MUJOCO_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


def camera_extrinsics(data: mujoco.MjData, cam_id: int) -> np.ndarray:
    """Camera-to-world 4x4 transform in OpenCV camera axes, from the simulator's current state."""
    pose = np.eye(4)
    pose[:3, :3] = data.cam_xmat[cam_id].reshape(3, 3) @ _MUJOCO_TO_OPENCV
    pose[:3, 3] = data.cam_xpos[cam_id]
    return pose.astype(np.float32)


class PolyactEnv(gym.Env):
    """A gymnasium Env whose observations and actions follow polyact.contract."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        contract: EnvSpec,
        task: str,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        quality: Quality,
        camera_sources: Mapping[str, str] | None = None,
    ):
        """`camera_sources` maps a contract camera name to the model camera that renders it, for a suite
        that offers a model camera moved under another name."""
        self.contract = contract
        self.task = task
        self.model, self.data = model, data
        self.observation_space = observation_space(contract)
        self.action_space = action_space(contract)
        self.render_mode = "rgb_array"
        height = {c.height for c in contract.cameras}
        width = {c.width for c in contract.cameras}
        if len(height) != 1 or len(width) != 1:
            raise ValueError("all cameras of one environment share one resolution")
        self._renderer = Renderer(model, height.pop(), width.pop(), quality)
        self._cam_ids = {}
        valid = [model.camera(i).name for i in range(model.ncam)]
        for cam in contract.camera_names:
            source = (camera_sources or {}).get(cam, cam)
            if source not in valid:
                self._renderer.close()
                raise unknown_name("camera", cam, valid)
            self._cam_ids[cam] = valid.index(source)
        self._intrinsics = {
            cam.name: intrinsics_from_fovy(float(model.cam_fovy[self._cam_ids[cam.name]]), cam.height, cam.width)
            for cam in contract.cameras
        }
        self.instruction = ""

    # --- what a suite implements -------------------------------------------------------------
    @abstractmethod
    def _reset_sim(self, seed: int, options: dict[str, Any]) -> str:
        """Put the simulator in the seed's initial state; return the episode's instruction."""

    @abstractmethod
    def _apply_action(self, action: np.ndarray) -> None:
        """Advance the simulator by one control step under `action` (already checked, float32)."""

    @abstractmethod
    def _proprio(self) -> np.ndarray:
        """The `state` vector, float32, named by contract.state_names."""

    def _goal(self) -> np.ndarray:
        """The `goal` vector (contract.goal_names); only called when the contract has goal names."""
        raise NotImplementedError

    def _subgoal(self) -> np.ndarray:
        """The `subgoal` (an action, A,); only called when the contract says observations carry it."""
        raise NotImplementedError

    @abstractmethod
    def _success(self) -> bool:
        """The task's success test on simulator state."""

    def _reward(self) -> float:
        """The suite's own shaped reward, if it has one (imitation learning ignores it)."""
        return 0.0

    def _privileged(self) -> Any:
        """Simulator state a scripted expert needs; never given to policies."""
        return None

    # --- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        self.instruction = self._reset_sim(int(seed), dict(options or {}))
        self._steps = 0
        return self._observation(), self._info()

    def step(self, action: Any):
        action = self.contract.check_action(action)
        action = np.clip(action, self.action_space.low, self.action_space.high)
        self._apply_action(action)
        self._steps += 1
        info = self._info()
        truncated = self._steps >= self.contract.max_episode_steps
        return self._observation(), float(self._reward()), False, truncated, info

    def render(self) -> np.ndarray:
        """The first camera's RGB frame (gymnasium's rgb_array render mode)."""
        rgb, _ = self._renderer.render(self.data, self._cam_ids[self.contract.camera_names[0]])
        return rgb

    def close(self) -> None:
        self._renderer.close()

    # --- observation assembly ----------------------------------------------------------------
    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {}
        for cam, cam_id in self._cam_ids.items():
            rgb, depth = self._renderer.render(self.data, cam_id)
            obs[f"rgb/{cam}"] = rgb
            obs[f"depth/{cam}"] = depth
            obs[f"intrinsics/{cam}"] = self._intrinsics[cam].copy()
            obs[f"extrinsics/{cam}"] = camera_extrinsics(self.data, cam_id)
        obs["state"] = np.asarray(self._proprio(), np.float32)
        if self.contract.goal_names:
            obs["goal"] = np.asarray(self._goal(), np.float32)
        if self.contract.subgoal:
            obs[SUBGOAL_KEY] = np.asarray(self._subgoal(), np.float32)
        obs["instruction"] = self.instruction
        return obs

    def _info(self) -> dict[str, Any]:
        return {"success": bool(self._success()), "privileged": self._privileged(), "task": self.task}

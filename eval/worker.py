"""What runs in each evaluation worker process: episode ends, video frames and the scripted expert.

`EvalEnv` wraps a MultiTaskEnv (any task of the suite) and adds the evaluation protocol on the
worker's side, so the main process only receives what it needs:
- an episode ends at the first step whose `info["success"]` is true (success at any step counts) or
  at the step limit;
- `reset(options={"idle": True})` parks a worker that has no episode left: it keeps its last
  observation and its steps simulate nothing, so it costs nothing while the others finish (the vector
  API steps every sub-environment, and an ended one must be reset before its next step);
- when asked at reset (`record=True`), it keeps the first camera's frames of the episode in memory and
  hands them over once, in the final step's info (`info["recording"]`);
- with `expert=True` it runs the suite's scripted expert beside the env and puts its next action in
  `info["expert_action"]`; experts read privileged simulator state and may hold their env (the
  rlbench_like expert plans with the arm's model), so they live where the env lives;
- `info["privileged"]` never leaves the worker: policies must not see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from polyact.envs.config import EnvConfig
from polyact.envs.multitask import MultiTaskEnv
from polyact.envs.registry import Expert, make_expert


@dataclass(frozen=True)
class Recording:
    """The first camera's frames of one episode, (T + 1, H, W, 3) uint8: the reset frame, then one per step.

    A class rather than a bare array so gymnasium's info batching keeps episodes of different
    lengths apart instead of stacking them.
    """

    frames: np.ndarray


class EvalEnv(gym.Env):
    """One worker's environment; `reset(seed=s, options={"task": t, "record": bool, ...})` starts an
    episode (other options, e.g. `goal_vector`, go to the task's environment), and
    `reset(options={"idle": True})` parks the worker."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, cfg: EnvConfig, first_task: str, expert: bool = False):
        self.env = MultiTaskEnv(cfg, first_task)
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space
        self.render_mode = "rgb_array"
        self._frame_key = f"rgb/{self.env.contract.camera_names[0]}"
        self._use_expert = expert
        self._expert: Expert | None = None
        self._frames: list[np.ndarray] | None = None
        self._obs: dict[str, Any] | None = None
        self._idle = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        self._idle = bool(options.pop("idle", False))
        if self._idle:  # the rollout parks only workers that have run an episode, so _obs is set
            return self._obs, {}
        record = bool(options.pop("record", False))
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        self._frames = [obs[self._frame_key]] if record else None
        if self._use_expert:
            self._expert = make_expert(self.env.current)
            self._expert.reset()
        # the seed lets a sampling policy draw its noise per episode (eval/trained.py)
        return obs, {**self._public(obs, info, ended=False), "seed": seed}

    def step(self, action: Any):
        if self._idle:
            return self._obs, 0.0, False, False, {}
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._obs = obs
        terminated = terminated or info["success"]
        ended = terminated or truncated
        public = self._public(obs, info, ended)
        if self._frames is not None:
            self._frames.append(obs[self._frame_key])
            if ended:
                public["recording"] = Recording(np.stack(self._frames))
                self._frames = None
        return obs, reward, terminated, truncated, public

    def _public(self, obs: dict[str, Any], info: dict[str, Any], ended: bool) -> dict[str, Any]:
        public = {k: v for k, v in info.items() if k != "privileged"}
        if self._expert is not None and not ended:
            public["expert_action"] = np.asarray(self._expert.act(obs, info), np.float32)
        return public

    def render(self) -> np.ndarray:
        return self.env.render()

    def close(self) -> None:
        self.env.close()

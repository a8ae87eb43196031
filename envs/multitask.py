"""Every task of a task set behind one environment, switched by `reset(options={"task": name})`.

A fixed pool of worker processes can then serve all tasks of a suite (evaluation moves each worker
from task to task as episodes are handed out) instead of needing one worker per task. Environments are
built on first use and the least recently used one is closed beyond `max_envs`, so a worker holds a few
MuJoCo models and GL contexts, not fifty.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import gymnasium as gym
import numpy as np

from polyact.contract import EnvSpec
from polyact.envs.base import PolyactEnv
from polyact.envs.config import EnvConfig
from polyact.envs.registry import make_env, resolve_tasks
from polyact.errors import ContractError, unknown_name


class MultiTaskEnv(gym.Env):
    """The tasks of `cfg.tasks` in one env; `reset(options={"task": t, ...})` switches to task t.

    Other reset options go to the task's own environment. Without a `task` option the current task
    is kept. `current` is the task's PolyactEnv (scripted experts are built from it).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, cfg: EnvConfig, task: str | None = None, max_envs: int = 4):
        if max_envs < 1:
            raise ValueError(f"max_envs must be >= 1, got {max_envs}")
        _, self.tasks = resolve_tasks(cfg.tasks)
        self._cfg = cfg
        self._max_envs = max_envs
        self._envs: OrderedDict[str, PolyactEnv] = OrderedDict()
        self.current = self._env_for(task or self.tasks[0])
        self.observation_space = self.current.observation_space
        self.action_space = self.current.action_space
        self.render_mode = "rgb_array"

    @property
    def contract(self) -> EnvSpec:
        return self.current.contract

    @property
    def task(self) -> str:
        return self.current.task

    @property
    def instruction(self) -> str:
        return self.current.instruction

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        env = self._env_for(options.pop("task", self.current.task))
        self.current = env
        return env.reset(seed=seed, options=options)

    def step(self, action: Any):
        return self.current.step(action)

    def render(self) -> np.ndarray:
        return self.current.render()

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def _env_for(self, task: str) -> PolyactEnv:
        if task in self._envs:
            self._envs.move_to_end(task)
            return self._envs[task]
        if task not in self.tasks:
            raise unknown_name(f"task of {self._cfg.tasks}", task, self.tasks)
        env = make_env(task, self._cfg)
        if self._envs:  # every env kept has the first one's contract, so the current one stands for it
            differs = env.observation_space != self.observation_space or env.action_space != self.action_space
            state = env.contract.state_names != self.current.contract.state_names  # env.task_state: other props
            if differs or state:
                env.close()
                raise ContractError(
                    f"{task} observes or acts differently from {self.current.task}"
                    + (" (its state names other values)" if state else "")
                    + "; one MultiTaskEnv needs one contract"
                )
        self._envs[task] = env
        while len(self._envs) > self._max_envs:
            _, oldest = self._envs.popitem(last=False)
            oldest.close()
        return env

"""Shared helpers for the rlbench_like tests: small, fast environments."""

from __future__ import annotations

import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like import SUITE
from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.tasks.base import Task


def small_env(task: str, cameras: tuple[str, ...] = ("wrist",), size: int = 8, **kwargs):
    """An env rendering few, tiny images: rollouts then cost physics, not rendering."""
    return SUITE.make_env(task, EnvConfig(tasks=task, cameras=list(cameras), height=size, width=size, **kwargs))


@pytest.fixture
def env_factory():
    envs = []

    def make(task: str, **kwargs):
        env = small_env(task, **kwargs)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


@pytest.fixture
def task_env():
    """Envs of a Task instance (a subclass that aims the expert elsewhere, say): one tiny camera, every
    variation reachable by index unless `split` narrows them."""
    envs = []

    def make(task: Task, split: str = "all", **kwargs) -> RLBenchLikeEnv:
        # `tasks` only has to name a known set: the env reads the cameras, image size and action mode
        env = RLBenchLikeEnv(task, EnvConfig(tasks="RLB-all", cameras=["wrist"], height=8, width=8, **kwargs), split)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


def run_expert(env: RLBenchLikeEnv, seed: int, variation: int | None = None) -> bool:
    """The expert's whole script from `reset(seed)`: whether the task succeeded at any step."""
    expert = ScriptedExpert(env)
    obs, info = env.reset(seed=seed, options={} if variation is None else {"variation": variation})
    succeeded = False
    for _ in range(env.contract.max_episode_steps):
        obs, _, _, _, info = env.step(expert.act(obs, info))
        succeeded = succeeded or info["success"]
        if expert.finished:
            break
    return succeeded

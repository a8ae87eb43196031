"""Shared helpers for the rlbench_like tests: small, fast environments."""

from __future__ import annotations

import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like import SUITE


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

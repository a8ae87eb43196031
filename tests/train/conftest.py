"""A small real Meta-World dataset (scripted demonstrations at 32x32) for the training tests."""

from __future__ import annotations

from dataclasses import replace

import pytest

from polyact.collect import record_episode
from polyact.data import DatasetWriter
from polyact.envs.config import EnvConfig
from polyact.envs.registry import make_env, make_expert

TASKS = ("reach-v3", "drawer-close-v3")


@pytest.fixture(scope="session")
def metaworld_dataset(tmp_path_factory):
    """Two tasks x two demonstrations, recorded in this process (no workers) into a real dataset."""
    path = tmp_path_factory.mktemp("data") / "demos"
    writer = None
    for task in TASKS:
        env = make_env(task, EnvConfig(tasks=task, height=32, width=32))
        expert = make_expert(env)
        try:
            if writer is None:
                spec = replace(env.contract, tasks=TASKS)
                writer = DatasetWriter.for_spec(path, spec)
            for seed in (0, 1):
                writer.add_episode(record_episode(env, expert, seed))
        finally:
            env.close()
    writer.close()
    return path

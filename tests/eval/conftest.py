"""Small, fast evaluation settings shared by the tests: two Meta-World tasks at 32x32, short episodes.

With 60 steps the expert finishes every reach-v3 episode and push-v3 only from seed 1000002 (its
episodes 0, 1 and 3 fail), so runs have successes and failures.
"""

from __future__ import annotations

import pytest

from polyact.envs.config import EnvConfig
from polyact.eval.config import EvalConfig

TASKS = ["reach-v3", "push-v3"]


def small_config(out, **overrides) -> EvalConfig:
    settings = dict(
        policy="expert",
        env=EnvConfig(tasks="MT10", height=32, width=32, max_episode_steps=60),
        only_tasks=list(TASKS),
        episodes_per_task=4,
        workers=2,
        out=str(out),
        progress=False,
    )
    settings.update(overrides)
    return EvalConfig(**settings)


@pytest.fixture
def make_config():
    return small_config


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """One uninterrupted run of the small configuration (2 workers), shared by the slow tests."""
    from polyact.eval.run import evaluate

    cfg = small_config(tmp_path_factory.mktemp("reference"))
    return cfg, evaluate(cfg)

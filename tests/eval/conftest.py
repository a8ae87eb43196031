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


@pytest.fixture(scope="session")
def make_config():
    return small_config


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """One uninterrupted run of the small configuration (2 workers), shared by the slow tests."""
    from polyact.eval.run import evaluate

    cfg = small_config(tmp_path_factory.mktemp("reference"))
    return cfg, evaluate(cfg)


def _stats(spec) -> dict:
    """Normalisation statistics of every feature a policy for `spec` may read (plausible scales)."""
    import numpy as np

    def feat(dim: int, scale: float = 1.0, offset: float = 0.0) -> dict:
        full = lambda v: np.full(dim, v, np.float32)  # noqa: E731
        return {"mean": full(offset), "std": full(scale / 2), "min": full(offset - scale),
                "max": full(offset + scale), "q01": full(offset - 0.9 * scale), "q99": full(offset + 0.9 * scale),
                "count": 1000}  # fmt: skip

    stats = {"action": feat(spec.action.dim), "state": feat(len(spec.state_names)), "goal": feat(len(spec.goal_names))}
    stats.update({f"rgb/{cam}": feat(3, 60.0, 120.0) for cam in spec.camera_names})
    return stats


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> str:
    """An untrained `tiny` l1 policy for the small configuration's environment (history 2, chunks of 4
    re-planned every 2 steps), saved as a checkpoint directory: deterministic, so the actions of an
    episode are the same in this process and behind a server."""
    import torch

    from polyact.envs.metaworld_instructions import INSTRUCTIONS
    from polyact.eval.run import probe_spec
    from polyact.policies import HeadConfig, PolicyConfig, build_policy

    spec = probe_spec(TASKS[0], small_config("unused").env)
    config = PolicyConfig(size="tiny", head=HeadConfig(name="l1"), history=2, chunk=4, replan_every=2)
    torch.manual_seed(0)
    policy = build_policy(config, spec, _stats(spec), [s for t in TASKS for s in INSTRUCTIONS[t]])
    return str(policy.save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny-l1"))


@pytest.fixture(scope="session")
def policy_server(small_checkpoint):
    """`polyact serve`'s server for `small_checkpoint` on 127.0.0.1 (any free port), in a thread of this
    process; one torch thread, as the machine's cores go to the environments."""
    import torch

    from polyact.deploy.config import ServeConfig
    from polyact.deploy.policy import load_served_policy
    from polyact.deploy.server import serve_in_thread

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with serve_in_thread(load_served_policy(small_checkpoint), ServeConfig(port=0)) as server:
        yield server
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def checkpoint_run(small_checkpoint, tmp_path_factory):
    """`small_checkpoint` evaluated in this process (the local runner), 2 episodes per task: what served
    runs must reproduce."""
    from polyact.eval.run import evaluate

    cfg = small_config(tmp_path_factory.mktemp("checkpoint_run"), policy=small_checkpoint, episodes_per_task=2)
    return cfg, evaluate(cfg)

"""The rollout loop: one batched act call per step for every live environment, each job run once."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.vector import vector_env
from polyact.eval.episodes import plan_jobs
from polyact.eval.policy import ExpertPolicy
from polyact.eval.rollout import JobQueue, run_episodes, start_tasks
from polyact.eval.worker import EvalEnv

CFG = EnvConfig(tasks="MT10", height=32, width=32, max_episode_steps=60)


def test_workers_start_spread_and_keep_to_their_task():
    jobs = plan_jobs(["a", "b", "c"], 3, "seeds", 0, set()) + plan_jobs(["d"], 1, "seeds", 0, set())
    assert start_tasks(jobs, 2) == ["a", "c"] and start_tasks(jobs, 5) == ["a", "a", "b", "c", "d"]
    queue = JobQueue(jobs)
    handed = [queue.next("c"), queue.next("c"), queue.next("c"), queue.next("c"), queue.next("a")]
    assert [(j.task, j.index) for j in handed] == [("c", 0), ("c", 1), ("c", 2), ("a", 0), ("a", 1)]
    rest, task = [], "d"
    while (job := queue.next(task)) is not None:
        rest.append((job.task, job.index))
        task = job.task
    assert rest == [("d", 0), ("b", 0), ("b", 1), ("b", 2), ("a", 2)]  # then the task with the most left


class RecordingPolicy(ExpertPolicy):
    """The scripted experts, noting what every call received."""

    def __init__(self):
        self.calls: list[tuple[list[int], dict]] = []
        self.resets: list[list[int]] = []

    def reset(self, env_ids):
        self.resets.append(list(env_ids))

    def act(self, obs, infos, env_ids):
        shapes = {k: (v.shape if isinstance(v, np.ndarray) else len(v)) for k, v in obs.items()}
        self.calls.append((list(env_ids), shapes))
        assert all("privileged" not in info for info in infos)
        return super().act(obs, infos, env_ids)


def expert_vector(n: int, asynchronous: bool) -> gym.vector.VectorEnv:
    fns = [partial(EvalEnv, CFG, "reach-v3", True)] * n
    return vector_env(fns, asynchronous=asynchronous, autoreset_mode=gym.vector.AutoresetMode.DISABLED)


@pytest.mark.slow
def test_one_batched_call_serves_every_live_environment():
    jobs = plan_jobs(["reach-v3", "push-v3"], 2, "seeds", 0, set())
    policy = RecordingPolicy()
    finished = []
    vec = expert_vector(2, asynchronous=False)  # the loop is the same for worker processes; this is faster
    try:
        stats = run_episodes(vec, policy, jobs, lambda r, frames: finished.append(r))
    finally:
        vec.close()
    assert sorted((r.task, r.index) for r in finished) == sorted((j.task, j.index) for j in jobs)
    assert stats.episodes == 4 and stats.env_steps == sum(r.length for r in finished)
    env_ids, shapes = policy.calls[0]
    assert env_ids == [0, 1]
    assert shapes["rgb/corner"] == (2, 32, 32, 3) and shapes["state"] == (2, 4) and shapes["instruction"] == 2
    two_at_once = sum(len(ids) == 2 for ids, _ in policy.calls)
    assert stats.policy_calls == len(policy.calls) < stats.env_steps
    assert two_at_once >= stats.env_steps // 2 - 60  # batched except while the last episode finishes
    assert policy.resets[0] == [0, 1] and sum(len(r) for r in policy.resets) == len(jobs)


class BadShapePolicy(ExpertPolicy):
    def act(self, obs, infos, env_ids):
        return np.zeros((len(env_ids), 3), np.float32)


@pytest.mark.slow
def test_a_policy_returning_the_wrong_shape_is_stopped():
    from polyact.errors import ContractError

    vec = expert_vector(1, asynchronous=False)
    try:
        with pytest.raises(ContractError, match=r"shape \(1, 3\).*expected \(1, 4\)"):
            run_episodes(vec, BadShapePolicy(), plan_jobs(["reach-v3"], 1, "seeds", 0, set()), lambda r, f: None)
    finally:
        vec.close()

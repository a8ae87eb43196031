"""Which episodes run: evaluation seeds, metaworld's official goal configurations, and the check that
a training dataset holds none of the evaluation's starting states."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import pytest

from polyact.data import DatasetWriter
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.envs.config import EVAL_SEED_BASE, EnvConfig
from polyact.envs.vector import vector_env
from polyact.errors import ConfigError
from polyact.eval import run as run_module
from polyact.eval.episodes import check_disjoint, official_goal_vectors, plan_jobs
from polyact.eval.policy import ExpertPolicy
from polyact.eval.rollout import run_episodes
from polyact.eval.worker import EvalEnv


def test_seeds_are_fixed_and_above_the_demonstration_range():
    jobs = plan_jobs(["reach-v3", "push-v3"], 3, "seeds", 0, done={("push-v3", 1)})
    assert [(j.task, j.index, j.seed) for j in jobs] == [
        ("reach-v3", 0, EVAL_SEED_BASE),
        ("reach-v3", 1, EVAL_SEED_BASE + 1),
        ("reach-v3", 2, EVAL_SEED_BASE + 2),
        ("push-v3", 0, EVAL_SEED_BASE),
        ("push-v3", 2, EVAL_SEED_BASE + 2),
    ]
    assert all(j.goal_vector is None for j in jobs)


def test_lerobot_protocol_starts_episode_i_from_seed_1000_plus_i(tmp_path):
    jobs = plan_jobs(["push-v3"], 3, "lerobot", 0, done=set())
    assert [(j.index, j.seed) for j in jobs] == [(0, 1000), (1, 1001), (2, 1002)]
    make_dataset(tmp_path / "demos", [0, 1001])  # a demonstration at one of LeRobot's seeds
    check_disjoint(str(tmp_path / "demos"), ["reach-v3"], 1, "lerobot")  # seed 1000 only: disjoint
    with pytest.raises(ConfigError, match=r"reach-v3 seed 1001.*evaluation seeds are 1000..1002"):
        check_disjoint(str(tmp_path / "demos"), ["reach-v3"], 3, "lerobot")


class GoalRecorder(ExpertPolicy):
    """Notes the goal each episode starts with."""

    def __init__(self):
        self.first_goals: list[np.ndarray] = []
        self._new: set[int] = set()

    def reset(self, env_ids):
        self._new.update(env_ids)

    def act(self, obs, infos, env_ids):
        for row, i in enumerate(env_ids):
            if i in self._new:
                self.first_goals.append(obs["goal"][row])
                self._new.discard(i)
        return super().act(obs, infos, env_ids)


@pytest.mark.slow
def test_official_goals_are_metaworlds_distinct_configurations_and_reach_the_env():
    goals = official_goal_vectors("reach-v3", seed=0)
    assert goals.shape == (50, 6) and len(np.unique(goals, axis=0)) == 50
    jobs = plan_jobs(["reach-v3"], 3, "metaworld_goals", 0, set())
    assert [j.goal_vector for j in jobs] == [tuple(goals[i]) for i in range(3)]
    assert [j.seed for j in jobs] == [EVAL_SEED_BASE + i for i in range(3)]

    cfg = EnvConfig(tasks="reach-v3", height=32, width=32, max_episode_steps=5)
    vec = vector_env(
        [partial(EvalEnv, cfg, "reach-v3", True)], asynchronous=False, autoreset_mode=gym.vector.AutoresetMode.DISABLED
    )
    policy = GoalRecorder()
    try:
        run_episodes(vec, policy, jobs, lambda r, f: None)
    finally:
        vec.close()
    # reach-v3's rand_vec is (hand start xyz, goal xyz): each episode's observed goal is its own
    np.testing.assert_allclose(np.stack(policy.first_goals), goals[:3, 3:], atol=1e-6)


def make_dataset(path, seeds):
    spec = synthetic_env_spec(cameras=("corner",), height=8, width=8, tasks=("reach-v3",))
    writer = DatasetWriter.for_spec(path, spec)
    with writer:
        for seed in seeds:
            writer.add_episode(synthetic_episode(spec, 3, seed=seed, task="reach-v3"))


def test_a_dataset_holding_evaluation_seeds_is_refused(tmp_path, make_config, monkeypatch):
    make_dataset(tmp_path / "demos", [0, 1, EVAL_SEED_BASE + 2])
    check_disjoint(str(tmp_path / "demos"), ["reach-v3"], 2)  # evaluation seeds base, base+1: disjoint
    check_disjoint(str(tmp_path / "demos"), ["push-v3"], 4)  # another task's seed 1000002 is another state
    with pytest.raises(ConfigError, match=r"1 episode\(s\).*reach-v3 seed 1000002"):
        check_disjoint(str(tmp_path / "demos"), ["reach-v3", "push-v3"], 4)

    def no_policy(cfg, n):
        raise AssertionError("the dataset check must come first")

    monkeypatch.setattr(run_module, "policy_for_eval", no_policy)
    cfg = make_config(tmp_path / "run", train_dataset=str(tmp_path / "demos"))
    with pytest.raises(ConfigError, match="memorisation"):
        run_module.evaluate(cfg)
    assert not (tmp_path / "run").exists()

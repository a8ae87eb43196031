"""The sub-goal oracle (env.subgoal_oracle): the sub-goals of the dataset, given in the same order as the
episode reaches them, and an episode otherwise untouched. One close_jar demonstration (three sub-goals)."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.collect import record_episode
from polyact.contract import FeatureSpec
from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like import SUITE
from polyact.envs.rlbench_like.keyframe_actions import keyframe_transitions
from polyact.errors import ConfigError
from polyact.keyframe_data import keyframe_episode

TASK, SEED = "close_jar", 0


def make_env(**kwargs):
    return SUITE.make_env(TASK, EnvConfig(tasks=TASK, cameras=["wrist"], height=8, width=8, **kwargs))


@pytest.fixture(scope="module")
def demonstration():
    """The seed's dense demonstration as `polyact collect` records it, and its keyframe episode as
    `polyact data keyframes` writes it (with the `subgoal` feature)."""
    env = make_env()
    try:
        episode = record_episode(env, SUITE.make_expert(env), SEED)
        episode.extra.update(SUITE.annotate(episode, env))
    finally:
        env.close()
    return episode, keyframe_episode(episode, SUITE.keyframe_transitions)


@pytest.fixture(scope="module")
def oracle_env():
    env = make_env(action_mode="keyframe", subgoal_oracle=True)
    yield env
    env.close()


def test_the_subgoals_are_the_datasets(demonstration, oracle_env):
    _, keyed = demonstration
    obs, _ = oracle_env.reset(seed=SEED)
    labels = keyed.observations["subgoal"]  # (N, 7), each sample's next sub-goal
    np.testing.assert_array_equal(obs["subgoal"], labels[0])
    in_order = labels[np.r_[True, np.any(labels[1:] != labels[:-1], axis=1)]]
    np.testing.assert_array_equal(oracle_env.subgoal_oracle.subgoals, in_order)
    assert len(in_order) == 3
    assert oracle_env.contract.features()["subgoal"] == FeatureSpec("float32", labels.shape[1:])


def test_the_subgoal_advances_as_the_demonstrations_keyframes_reach_it(demonstration, oracle_env):
    """Driven by the demonstration's own keyframe actions, the episode sees at every observation the
    sub-goal the dataset labels that sample with, and the task succeeds once the second sub-goal is reached
    (the third is the script's rest pose after success; once reached, it stays)."""
    episode, keyed = demonstration
    kf = keyframe_transitions(episode.observations["state"], episode.actions, episode.extra["keyframes"])
    goals = episode.extra["subgoals"]
    oracle = oracle_env.subgoal_oracle
    obs, _ = oracle_env.reset(seed=SEED)
    for i, (action, target) in enumerate(zip(kf.actions, kf.targets, strict=True)):
        np.testing.assert_array_equal(obs["subgoal"], keyed.observations["subgoal"][i])
        obs, _, _, _, info = oracle_env.step(action)
        assert oracle.reached == sum(g <= target for g in goals)
        if info["success"]:
            break
    assert info["success"] and oracle.reached == len(goals) - 1 == 2
    last = oracle.subgoals[-1]
    oracle.observe(last[:3] + [0.0, 0.015, 0.0], gripper_open=bool(last[-1] < 0))  # within REACHED_POS, 2 cm
    assert oracle.reached == len(goals)
    np.testing.assert_array_equal(oracle.subgoal, last)


def test_the_episode_is_the_same_with_and_without_the_oracle(demonstration, oracle_env):
    _, keyed = demonstration
    plain = make_env(action_mode="keyframe")
    try:
        pairs = [(plain.reset(seed=SEED)[0], oracle_env.reset(seed=SEED)[0])]
        pairs += [(plain.step(action)[0], oracle_env.step(action)[0]) for action in keyed.actions[:2]]
    finally:
        plain.close()
    for without, with_oracle in pairs:
        assert set(with_oracle) == {*without, "subgoal"}
        for key, value in without.items():
            assert np.array_equal(value, with_oracle[key]) if key != "instruction" else value == with_oracle[key]


def test_the_option_needs_the_keyframe_mode_of_a_suite_with_an_oracle():
    with pytest.raises(ConfigError, match="suite metaworld has no sub-goal oracle"):
        EnvConfig(tasks="MT10", subgoal_oracle=True)
    with pytest.raises(ConfigError, match="set env.action_mode=keyframe"):
        EnvConfig(tasks="RLB12-novel", subgoal_oracle=True)
    # runs recorded before the option existed keep their identity; one with the oracle is another run
    assert "subgoal_oracle" not in EnvConfig(tasks="RLB12").identity()
    assert EnvConfig(tasks="RLB12", action_mode="keyframe", subgoal_oracle=True).identity()["subgoal_oracle"]

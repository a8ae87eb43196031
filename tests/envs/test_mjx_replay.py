"""The replay-render path (envs/rlbench_like/mjx/replay.py, trajectory.py).

What each test guards:
- test_replayed_frames_equal_the_directly_collected_ones: a reach_target expert episode collected on the CPU
  env (collect.record_episode) and replayed from its recorded states gives the same observations, every
  camera's rgb, depth, intrinsics, extrinsics and the state vector, bit for bit.
- test_replay_in_workers_gives_each_trajectory_its_frames: the worker-process path, in order (the episode and
  its first five steps).
- test_a_trajectory_from_another_layout_is_refused, test_trajectory_files: loud failures, the file format.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from polyact.collect import record_episode
from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like import TASKS
from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.mjx.replay import ReplayEnv, replay_trajectories
from polyact.envs.rlbench_like.mjx.trajectory import (
    StateTrajectory,
    load_trajectories,
    prop_poses,
    save_trajectories,
)
from polyact.errors import ConfigError

TASK = "reach_target"
SEEDS = (0, 1)
CFG = EnvConfig(tasks="RLB-all", cameras=["front", "wrist"], height=32, width=32)


class Recording(RLBenchLikeEnv):
    """The CPU env, keeping qpos and qvel after its reset and after every step."""

    def _reset_sim(self, seed, options):
        instruction = super()._reset_sim(seed, options)
        self.states = [(self.data.qpos.copy(), self.data.qvel.copy())]
        return instruction

    def _apply_action(self, action):
        super()._apply_action(action)
        self.states.append((self.data.qpos.copy(), self.data.qvel.copy()))


@pytest.fixture(scope="module")
def direct():
    """The CPU expert's reach_target episode of seed 0, collected directly, and its recorded states."""
    env = Recording(TASKS[TASK](), CFG)
    try:
        episode = record_episode(env, ScriptedExpert(env), seed=SEEDS[0])
        props, poses = prop_poses(env.model, env.data)
        trajectory = StateTrajectory(
            task=TASK,
            seed=SEEDS[0],
            options={},
            instruction=episode.instruction,
            qpos=np.array([s[0] for s in env.states]),
            qvel=np.array([s[1] for s in env.states]),
            actions=episode.actions,
            successes=episode.successes,
            props=props,
            prop_poses=poses,
        )
    finally:
        env.close()
    return episode, trajectory


@pytest.fixture(scope="module")
def replay_env():
    env = ReplayEnv(TASKS[TASK](), CFG)
    yield env
    env.close()


def assert_same_observations(expected, replayed):
    assert expected.keys() == replayed.keys()
    for key in expected:
        np.testing.assert_array_equal(replayed[key], expected[key], err_msg=key)


def test_replayed_frames_equal_the_directly_collected_ones(direct, replay_env):
    episode, trajectory = direct
    assert episode.success and len(episode.actions) > 10
    assert_same_observations(episode.observations, replay_env.replay(trajectory))


def test_replay_in_workers_gives_each_trajectory_its_frames(direct):
    episode, trajectory = direct
    steps = 5
    start = replace(
        trajectory,
        qpos=trajectory.qpos[: steps + 1],
        qvel=trajectory.qvel[: steps + 1],
        actions=trajectory.actions[:steps],
        successes=trajectory.successes[:steps],
    )
    whole, first = replay_trajectories([trajectory, start], CFG, workers=2)
    assert_same_observations(episode.observations, whole)
    assert_same_observations({k: v[:steps] for k, v in episode.observations.items()}, first)


def test_a_trajectory_from_another_layout_is_refused(direct, replay_env):
    _, trajectory = direct
    with pytest.raises(ConfigError, match="another layout"):
        replay_env.replay(replace(trajectory, seed=SEEDS[1]))
    with pytest.raises(ConfigError, match="cannot replay"):
        replay_env.replay(replace(trajectory, task="pick_and_lift"))


def test_trajectory_files(direct, tmp_path):
    _, trajectory = direct
    save_trajectories(tmp_path / "t.npz", [trajectory, trajectory])
    loaded = load_trajectories(tmp_path / "t.npz")
    assert len(loaded) == 2 and loaded[1].props == trajectory.props
    for field in ("qpos", "qvel", "actions", "successes", "prop_poses"):
        np.testing.assert_array_equal(getattr(loaded[1], field), getattr(trajectory, field))
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ConfigError, match="not a state trajectory file"):
        load_trajectories(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="qvel has"):
        replace(trajectory, qvel=trajectory.qvel[:-1])

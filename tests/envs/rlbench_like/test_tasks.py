"""Every task: resets, steps and renders every camera per the contract; its scripted expert succeeds
and doing nothing does not; the joint-position action mode works with the same expert."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.envs.rlbench_like import SUITE, TEST_TASKS, TRAIN_TASKS
from polyact.envs.rlbench_like.scene import CAMERAS
from polyact.errors import ContractError

from .conftest import small_env

ALL_TASKS = TRAIN_TASKS + TEST_TASKS


def test_suite_has_twelve_train_tasks_and_held_out_tasks():
    assert len(TRAIN_TASKS) >= 12 and len(TEST_TASKS) >= 2
    assert not set(TRAIN_TASKS) & set(TEST_TASKS)
    for task in ALL_TASKS:
        assert task == task.lower() and " " not in task and not task.endswith("-v3")


@pytest.mark.parametrize("task", ALL_TASKS)
def test_reset_step_and_render_every_camera(task):
    env = small_env(task, cameras=CAMERAS, size=32)
    try:
        obs, info = env.reset(seed=0)
        env.contract.check_observation(obs)
        assert env.contract.camera_names == CAMERAS
        for _ in range(2):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            env.contract.check_observation(obs)
        assert isinstance(info["success"], bool) and info["privileged"]["task"]
        for cam in CAMERAS:
            assert obs[f"rgb/{cam}"].std() > 5, f"{cam} image is flat"
            depth = obs[f"depth/{cam}"]
            assert np.all(np.isfinite(depth)) and depth.min() > 0
    finally:
        env.close()


def _rollout(env, policy, seed: int, steps: int) -> bool:
    obs, info = env.reset(seed=seed)
    for _ in range(steps):
        obs, _, _, _, info = env.step(policy(obs, info))
        if info["success"]:
            return True
    return False


@pytest.mark.parametrize("task", ALL_TASKS)
def test_expert_succeeds_and_doing_nothing_fails(task, env_factory):
    env = env_factory(task)
    expert = SUITE.make_expert(env)
    expert.reset()
    assert _rollout(env, expert.act, seed=1, steps=env.contract.max_episode_steps)
    still = np.zeros(env.action_space.shape, np.float32)
    still[-1] = -1.0  # gripper open
    assert not _rollout(env, lambda obs, info: still, seed=1, steps=30)


def test_joint_position_mode_runs_the_same_expert(env_factory):
    env = env_factory("pick_and_lift", action_mode="joint_position")
    assert env.contract.action.names[-1] == "gripper" and env.action_space.shape == (8,)
    expert = SUITE.make_expert(env)
    expert.reset()
    assert _rollout(env, expert.act, seed=2, steps=200)


def test_actions_are_checked_and_clipped(env_factory):
    env = env_factory("reach_target")
    env.reset(seed=0)
    with pytest.raises(ContractError):
        env.step(np.zeros(6))
    with pytest.raises(ContractError):
        env.step(np.full(7, np.nan))
    before = env.arm.target_pos.copy()
    env.step(np.array([1.0, 0, 0, 0, 0, 0, -1.0]))  # far beyond the 5 cm bound: clipped
    assert np.linalg.norm(env.arm.target_pos - before) <= 0.05 + 1e-6

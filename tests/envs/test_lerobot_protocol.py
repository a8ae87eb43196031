"""Meta-World as LeRobot's MetaWorld environment sets it up: no goal, corner2 moved, the same start states.

LeRobot (huggingface/lerobot src/lerobot/envs/metaworld.py:151-158) builds each task as
`metaworld.MT1(task, seed=42)`, sets its first train task, moves camera 2 (corner2) to (0.75, 0.075, 0.7),
unfreezes the random vector with the seeded generator, and resets with `env.seed(s); env.reset(seed=s)`.
The reference below replays those metaworld calls, so these tests compare polyact with what LeRobot's
environment computes, not with polyact's own idea of it.
"""

from __future__ import annotations

import metaworld
import numpy as np
import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.metaworld import LEROBOT_CORNER2_POSITION
from polyact.envs.registry import make_env
from polyact.errors import ConfigError


def lerobot_reference(task: str):
    """A metaworld env configured as LeRobot's MetaworldEnv._ensure_env does."""
    benchmark = metaworld.MT1(task, seed=42)
    env = benchmark.train_classes[task](render_mode="rgb_array", camera_name="corner2")
    env.set_task(benchmark.train_tasks[0])
    env.model.cam_pos[2] = [0.75, 0.075, 0.7]
    env.reset()
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    return env


@pytest.mark.parametrize("task", ["push-v3", "drawer-open-v3", "pick-place-v3"])
def test_start_states_equal_lerobots_for_the_same_seed(task):
    reference = lerobot_reference(task)
    env = make_env(task, EnvConfig(tasks=task, cameras=["corner2_lerobot"], height=32, width=32, goal=False))
    try:
        for seed in (1000, 1001, 1007):
            reference.seed(seed)
            raw, _ = reference.reset(seed=seed)
            obs, info = env.reset(seed=seed)
            # agent_pos (LeRobot: raw_obs[:4]) is polyact's state; the object's pose follows it
            np.testing.assert_allclose(obs["state"], raw[:4], atol=1e-6)
            np.testing.assert_allclose(info["privileged"][4:18], raw[4:18], atol=1e-6)
            np.testing.assert_allclose(env.unwrapped._mw._target_pos, reference._target_pos, atol=1e-9)
    finally:
        env.close()
        reference.close()


def test_goal_false_withholds_the_goal_everywhere():
    env = make_env("drawer-open-v3", EnvConfig(tasks="drawer-open-v3", height=32, width=32, goal=False))
    try:
        obs, _ = env.reset(seed=0)
        assert "goal" not in obs and env.contract.goal_names == ()
        assert "goal" not in env.contract.features() and "goal" not in env.observation_space.spaces
        env.contract.check_observation(obs)
        assert obs["state"].shape == (4,)
    finally:
        env.close()


def test_corner2_lerobot_is_corner2_moved_to_lerobots_place():
    moved = make_env("push-v3", EnvConfig(tasks="push-v3", cameras=["corner2_lerobot"], height=32, width=32))
    plain = make_env("push-v3", EnvConfig(tasks="push-v3", cameras=["corner2"], height=32, width=32))
    try:
        a, _ = moved.reset(seed=3)
        b, _ = plain.reset(seed=3)
        camera_position = a["extrinsics/corner2_lerobot"][:3, 3]
        np.testing.assert_allclose(camera_position, LEROBOT_CORNER2_POSITION, atol=1e-5)
        assert not np.allclose(b["extrinsics/corner2"][:3, 3], LEROBOT_CORNER2_POSITION)
        np.testing.assert_array_equal(a["extrinsics/corner2_lerobot"][:3, :3], b["extrinsics/corner2"][:3, :3])
        assert not np.array_equal(a["rgb/corner2_lerobot"], b["rgb/corner2"])
    finally:
        moved.close()
        plain.close()


def test_corner2_and_its_moved_copy_cannot_share_an_env():
    with pytest.raises(ConfigError, match="corner2_lerobot is corner2 moved"):
        make_env("push-v3", EnvConfig(tasks="push-v3", cameras=["corner2", "corner2_lerobot"], height=32, width=32))

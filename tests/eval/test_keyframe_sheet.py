"""The keyframe contact sheet: projection against hand-computed pixels, one row per keyframe action."""

from __future__ import annotations

import numpy as np

from polyact.envs.config import EnvConfig
from polyact.envs.registry import make_env, make_expert
from polyact.eval.keyframe_sheet import LABEL_HEIGHT, SCALE, draw_pose, keyframe_episode_sheet, project

K = np.array([[100.0, 0.0, 32.0], [0.0, 100.0, 32.0], [0.0, 0.0, 1.0]])


def test_projection_of_hand_computed_points():
    at_origin = np.eye(4)  # camera at the world origin looking along +z (OpenCV axes)
    assert np.allclose(project([0.1, -0.2, 2.0], K, at_origin), (37.0, 22.0))
    assert project([0.0, 0.0, -1.0], K, at_origin) is None  # behind the camera
    moved = np.eye(4)
    moved[:3, 3] = [1.0, 0.0, 0.0]  # the same camera 1 m along x: the point appears 1 m further left
    assert np.allclose(project([1.1, -0.2, 2.0], K, moved), (37.0, 22.0))


def test_the_chosen_pose_is_drawn_where_it_projects():
    image = np.zeros((64, 64, 3), np.uint8)
    action = np.array([0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0], np.float32)  # straight ahead, gripper closed
    drawn = np.asarray(draw_pose(image, action, K, np.eye(4)))
    assert drawn.shape == (64 * SCALE, 64 * SCALE, 3)
    ring = drawn[32 * SCALE - 4 : 32 * SCALE + 5, 32 * SCALE - 4 : 32 * SCALE + 5]
    assert (ring[..., 0] > 200).any() and drawn[:20, :20].max() == 0  # red (closed) at the centre only


def test_one_row_per_keyframe_action_of_the_expert():
    env = make_env("pick_and_lift", EnvConfig(tasks="pick_and_lift", cameras=["front", "wrist"], height=16,
                                              width=16, action_mode="keyframe"))  # fmt: skip
    try:
        expert = make_expert(env)
        expert.reset()
        sheet = keyframe_episode_sheet(env, expert.act, seed=3, cameras=("front", "wrist"))
        actions_taken = env._steps
    finally:
        env.close()
    assert actions_taken >= 3
    assert sheet.size == (2 * 16 * SCALE, LABEL_HEIGHT + actions_taken * (16 * SCALE + LABEL_HEIGHT))

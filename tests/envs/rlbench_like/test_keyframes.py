"""Keyframe extraction on synthetic trajectories with hand-computed keyframes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from polyact.data.episode import Episode
from polyact.envs.rlbench_like.arm import CONTROL_HZ, STATE_NAMES
from polyact.envs.rlbench_like.keyframes import annotate, episode_keyframes, keyframes


def _trajectory():
    """12 steps: move (1-3), rest (4-5), close the gripper at 6, move (7-8), rest (9), move (10), end (11)."""
    speed = [0.0, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.4, 0.4, 0.0, 0.3, 0.0]
    gripper_open = [True] * 6 + [False] * 6
    velocities = np.zeros((12, 7))
    velocities[:, 2] = speed
    return np.array(gripper_open), velocities


def test_keyframes_of_a_synthetic_trajectory():
    gripper_open, velocities = _trajectory()
    # 4: first rest after moving (its gripper window 2..5 is steady); 5: still resting, not moved since;
    # 6: gripper closes; 9: rest after moving (window 7..10 steady); 11: last step (10 moved, not a rest).
    assert keyframes(gripper_open, velocities) == [4, 6, 9, 11]


def test_no_rest_keyframe_next_to_a_gripper_change():
    gripper_open, velocities = _trajectory()
    velocities[4:6, 2] = 0.5  # the arm now moves until step 6, where the gripper closes
    # Step 6 is still and has moved, but the gripper changes within its window (4..7): it is a keyframe
    # for the gripper change only, once.
    assert keyframes(gripper_open, velocities) == [6, 9, 11]


def test_a_rest_just_before_the_last_step_is_merged_with_it():
    gripper_open = np.ones(6, dtype=bool)
    velocities = np.zeros((6, 7))
    velocities[1:4, 0] = 1.0  # moves 1-3, rests from 4: 4 is the second-to-last step, 5 the last
    assert keyframes(gripper_open, velocities) == [5]
    velocities[4, 0] = 1.0  # rests only at 5
    assert keyframes(gripper_open, velocities) == [5]


def test_threshold_is_inclusive_and_configurable():
    gripper_open = np.ones(5, dtype=bool)
    velocities = np.zeros((5, 7))
    velocities[1, 0] = 1.0
    velocities[2, 0] = 0.1  # at the threshold: still
    assert keyframes(gripper_open, velocities) == [2, 4]
    assert keyframes(gripper_open, velocities, stopping_delta=0.05) == [4]  # 2 moves; 3 rests at T-2


def test_episode_keyframes_read_states_and_commands():
    """Joint positions in the state (finite-differenced) and the gripper command of the previous action."""
    t = 10
    states = np.zeros((t, len(STATE_NAMES)), np.float32)
    joint = STATE_NAMES.index("joint_4")
    # Moves at 0.5 rad/s over steps 0-3, then holds still.
    states[:, joint] = np.minimum(np.arange(t), 3) * 0.5 / CONTROL_HZ
    actions = np.zeros((t, 7), np.float32)
    actions[:, -1] = -1.0
    actions[6:, -1] = 1.0  # close commanded at action 6: seen from step 7
    # Velocities (central differences): steps 0-3 move (0.5, 0.5, 0.5, 0.25), 4 on still.
    assert episode_keyframes(states, actions) == [4, 7, 9]
    episode = Episode(
        task="stack_blocks",
        instruction="x",
        seed=0,
        success=True,
        observations={"state": states},
        actions=actions,
        rewards=np.zeros(t, np.float32),
        successes=np.zeros(t, bool),
    )
    contact = [False] * 8 + [True] * 3  # the fingers touch the block from step 8 (one entry per observation)
    recorder = SimpleNamespace(contact_history=contact)
    assert annotate(episode, recorder) == {
        "keyframes": [4, 7, 9],
        "finger_contact": contact[:t],
        "subgoals": [7, 9],  # 4 is a rest with no gripper or contact change; 7 closes; 9 is the last
    }

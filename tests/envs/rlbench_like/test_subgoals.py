"""GravMAD's sub-goal keyposes: the rule on hand-made flags, and on real demonstrations."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.collect import record_episode
from polyact.envs.rlbench_like import SUITE
from polyact.envs.rlbench_like.keyframes import annotate
from polyact.envs.rlbench_like.subgoals import subgoal_actions, subgoal_keyframes, subgoal_labels
from polyact.errors import DatasetError


def test_the_rule_on_hand_made_flags():
    n = 20
    gripper_open = np.ones(n, bool)
    gripper_open[8:] = False  # closes at 8
    contact = np.zeros(n, bool)
    contact[14:] = True  # touches at 14 (a push, say), with the gripper already closed
    keyframes = [3, 8, 9, 12, 16, 19]
    # 3: nothing changed; 8 and 9: the gripper changed at 8 (within 2 steps before 9); 12: the gripper
    # changed 4 steps before, outside its 2-step window, no contact; 16: contact began 2 steps before;
    # 19: the last keyframe.
    assert subgoal_keyframes(keyframes, gripper_open, contact) == [8, 9, 16, 19]
    assert subgoal_keyframes([], gripper_open, contact) == []
    with pytest.raises(ValueError, match="every keyframe"):
        subgoal_keyframes([25], gripper_open, contact)


def test_subgoal_labels_follow_gravmads_rule():
    steps, targets = np.array([0, 10, 20, 30]), np.array([10, 20, 30, 40])
    actions = np.arange(4, dtype=np.float32)[:, None] * np.ones((1, 7), np.float32)  # label i = i
    labels = subgoal_labels(steps, targets, actions, [20, 40])
    # steps 0 and 10 head for sub-goal 20 (label 1), 20 and 30 for 40 (label 3); 40 is also the last
    assert labels[:, 0].tolist() == [1, 1, 3, 3]
    assert subgoal_actions(targets, actions, [40, 20])[:, 0].tolist() == [1, 3]  # the sub-goals in order
    with pytest.raises(DatasetError, match=r"sub-goals \[25\] are not keyframes"):
        subgoal_labels(steps, targets, actions, [25, 40])
    with pytest.raises(DatasetError, match="records no sub-goals"):
        subgoal_labels(steps, targets, actions, [])


def test_contacts_and_subgoals_of_a_real_pick(env_factory):
    """pick_and_lift: the fingers touch the block only once they close on it, and the sub-goals are
    the grasp and the final lift pose; the approach pauses are not sub-goals."""
    env = env_factory("pick_and_lift")
    episode = record_episode(env, SUITE.make_expert(env), seed=0)
    meta = annotate(episode, env)
    contact = np.array(meta["finger_contact"])
    assert len(contact) == episode.length and not contact[0] and contact[-1]
    closed = episode.actions[:, -1] > 0
    first_touch = int(np.argmax(contact))
    assert closed[:first_touch].any()  # contact comes after the close command
    assert set(meta["subgoals"]) <= set(meta["keyframes"])
    assert len(meta["subgoals"]) == 2 < len(meta["keyframes"])
    assert meta["subgoals"][-1] == episode.length - 1
    grasp = meta["subgoals"][0]
    assert closed[grasp - 1] and not closed[grasp - 3]  # the close keyframe

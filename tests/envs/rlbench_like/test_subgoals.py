"""GravMAD's sub-goal keyposes: the rule on hand-made flags, and on real demonstrations."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.collect import record_episode
from polyact.envs.rlbench_like import SUITE
from polyact.envs.rlbench_like.keyframes import annotate
from polyact.envs.rlbench_like.subgoals import subgoal_keyframes


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

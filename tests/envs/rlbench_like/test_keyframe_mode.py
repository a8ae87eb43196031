"""The keyframe action mode: its contract, its execution and outcome report, and that keyframes (the
expert's, and those extracted from dense demonstrations) solve every task when executed."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.collect import record_episode
from polyact.contract import PolicyRequirements, check_compatible
from polyact.envs.rlbench_like import SUITE, TASKS
from polyact.envs.rlbench_like.arm import KEYFRAME_STATE_NAMES, STATE_NAMES
from polyact.envs.rlbench_like.keyframe_actions import keyframe_transitions
from polyact.envs.rlbench_like.motion import KEYFRAME_EPISODE_STEPS, REACHED_POS, action_pose, pose_action
from polyact.envs.rlbench_like.rotations import euler_to_quat, yaw_quat
from polyact.errors import ContractError


def test_the_keyframe_contract(env_factory):
    env = env_factory("open_drawer", action_mode="keyframe")
    spec = env.contract
    assert spec.action.names == ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
    assert spec.max_episode_steps == KEYFRAME_EPISODE_STEPS == 25
    assert spec.state_names == KEYFRAME_STATE_NAMES == (*STATE_NAMES, "keyframes_done")
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (16,) and obs["state"][-1] == 0
    hold = pose_action(obs["state"][:3], obs["state"][3:7], -1.0)
    for done in (1, 2):
        obs, _, _, _, info = env.step(hold)
        assert obs["state"][-1] == done
    assert info["keyframe"]["reached"]


def test_pose_action_round_trips_the_orientation():
    quat = euler_to_quat(np.array([0.2, -0.4, 1.1]))
    pos, back, gripper = action_pose(pose_action(np.array([0.4, 0.1, 0.2]), quat, 0.7))
    assert np.allclose(pos, [0.4, 0.1, 0.2], atol=1e-6) and gripper == 1.0
    assert min(np.abs(back - quat).max(), np.abs(back + quat).max()) < 1e-6


def test_a_reachable_pose_is_reached_and_an_unreachable_one_reported(env_factory):
    env = env_factory("reach_target", action_mode="keyframe")
    obs, _ = env.reset(seed=0)
    target = np.array([0.45, 0.15, 0.30])
    obs, _, _, _, info = env.step(pose_action(target, yaw_quat(0.5), -1.0))
    outcome = info["keyframe"]
    if not outcome["stopped_on_success"]:  # the sphere may sit on the path; then the move ends early
        assert outcome["reached"] and outcome["reachable"] and outcome["pos_error"] < REACHED_POS
        assert np.linalg.norm(obs["state"][:3] - target) < REACHED_POS
    far = np.array([0.85, 0.5, 0.005])  # the workspace corner, pointing sideways: beyond the arm
    obs, _, _, _, info = env.step(pose_action(far, euler_to_quat(np.array([1.5, 0.0, 0.0])), -1.0))
    assert not info["keyframe"]["reachable"] and not info["keyframe"]["reached"]
    assert info["keyframe"]["pos_error"] > REACHED_POS


def test_the_gripper_moves_after_the_arm(env_factory):
    """RLBench's MoveArmThenGripper: the fingers close only once the arm is at the pose."""
    env = env_factory("pick_and_lift", action_mode="keyframe")
    obs, _ = env.reset(seed=0)
    obs, _, _, _, info = env.step(pose_action([0.45, 0.0, 0.3], yaw_quat(0.0), 1.0))
    assert info["keyframe"]["reached"] and obs["state"][7] < 0.1  # closed on nothing
    assert info["keyframe"]["control_steps"] > 8


def test_a_policy_for_keyframes_is_refused_by_the_dense_mode(env_factory):
    keyframe_spec = env_factory("turn_tap", action_mode="keyframe").contract
    dense_spec = env_factory("turn_tap").contract
    req = PolicyRequirements(("wrist",), 7, 16, 0, (8, 8), action_names=keyframe_spec.action.names)
    check_compatible(req, keyframe_spec)
    with pytest.raises(ContractError, match="action_mode"):
        check_compatible(
            PolicyRequirements(("wrist",), 7, 15, 0, (8, 8), action_names=keyframe_spec.action.names), dense_spec
        )


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_expert_keyframes_solve_every_task(env_factory, task):
    env = env_factory(task, action_mode="keyframe")
    expert = SUITE.make_expert(env)
    obs, info = env.reset(seed=3)
    expert.reset()
    for _ in range(env.contract.max_episode_steps):
        obs, _, _, truncated, info = env.step(expert.act(obs, info))
        if info["success"]:
            break
    assert info["success"]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_keyframes_extracted_from_a_dense_demo_solve_the_task(env_factory, task):
    """One collection serves both modes: PerAct's keyframes of a dense expert episode, executed as
    keyframe actions from the same seed, succeed; doing nothing does not."""
    dense = env_factory(task)
    episode = record_episode(dense, SUITE.make_expert(dense), seed=5)
    assert episode.success
    kf = keyframe_transitions(episode.observations["state"], episode.actions)
    assert kf.actions.shape[0] <= KEYFRAME_EPISODE_STEPS
    env = env_factory(task, action_mode="keyframe")
    obs, info = env.reset(seed=5)
    assert np.allclose(obs["state"][:15], episode.observations["state"][0], atol=1e-5)
    for i, action in enumerate(kf.actions):
        assert obs["state"][-1] == kf.states[i, -1] == i
        obs, _, _, _, info = env.step(action)
        if info["success"]:
            break
    assert info["success"]
    obs, info = env.reset(seed=5)
    stay = pose_action(obs["state"][:3], obs["state"][3:7], -1.0)
    assert not any(env.step(stay)[4]["success"] for _ in range(3))


def test_keyframe_transitions_of_a_hand_made_trajectory():
    """Keyframes at 4 (gripper closes) and 9 (the end); every_n=3 adds steps 3 and 6."""
    n = 10
    states = np.zeros((n, len(STATE_NAMES)), np.float32)
    states[:, 0] = np.arange(n) / 10  # x moves 10 cm a step
    states[:, 3] = 1.0  # identity quaternion: pointing down
    actions = np.zeros((n, 7), np.float32)
    actions[:, -1] = -1.0
    actions[3:, -1] = 1.0  # the close command is action 3, so the state at 4 is "closed"
    kf = keyframe_transitions(states, actions, keyframes=[4, 9])
    assert kf.steps.tolist() == [0, 4] and kf.targets.tolist() == [4, 9]
    assert np.allclose(kf.actions[:, 0], [0.4, 0.9]) and kf.actions[:, -1].tolist() == [1.0, 1.0]
    assert np.allclose(kf.actions[:, 3:6], 0.0)
    assert kf.states[:, -1].tolist() == [0, 1]
    kf = keyframe_transitions(states, actions, keyframes=[4, 9], every_n=3)
    assert kf.steps.tolist() == [0, 3, 4, 6] and kf.targets.tolist() == [4, 4, 9, 9]
    assert kf.states[:, -1].tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="keyframes"):
        keyframe_transitions(states, actions, keyframes=[])

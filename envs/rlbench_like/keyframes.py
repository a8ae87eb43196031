"""Keyframes (sub-goal keyposes) of a demonstration, by the PerAct / GravMAD heuristic.

A step is a keyframe where the gripper opens or closes, or where the arm comes to rest after moving
(every joint speed at most `stopping_delta` rad/s), and the last step is one. As in PerAct
(ARM's `_keypoint_discovery`): no rest keyframe while the gripper state changes within two steps
before or one step after, none at the second-to-last step, and of two keyframes on the last two
steps only the last is kept. One deviation: where PerAct waits four steps after a rest keyframe
before it may find another (so a long pause yields a keyframe every five steps), a rest here counts
only if the arm moved since the previous keyframe, so one pause is one keyframe.

The collector stores them in `Episode.extra["keyframes"]` through the suite's `annotate`, beside the
per-step finger contacts and GravMAD's sub-goal keyframes (subgoals.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polyact.envs.rlbench_like.arm import CONTROL_HZ, STATE_NAMES
from polyact.envs.rlbench_like.subgoals import subgoal_keyframes

STOPPING_DELTA = 0.1  # rad/s, PerAct's
_JOINT_COLUMNS = [STATE_NAMES.index(f"joint_{i}") for i in range(1, 8)]


def keyframes(
    gripper_open: np.ndarray, joint_velocities: np.ndarray, stopping_delta: float = STOPPING_DELTA
) -> list[int]:
    """Keyframe step indices of a trajectory of T steps.

    gripper_open: (T,) bool, the gripper state at each step; joint_velocities: (T, J) rad/s.
    """
    gripper_open = np.asarray(gripper_open, dtype=bool)
    still = np.all(np.abs(np.asarray(joint_velocities)) <= stopping_delta, axis=1)  # (T,)
    n = len(gripper_open)
    keys: list[int] = []
    moved = False
    for i in range(n):
        moved = moved or not still[i]
        window = gripper_open[max(i - 2, 0) : min(i + 2, n)]
        gripper_steady = bool(np.all(window == gripper_open[i]))
        rest = still[i] and moved and gripper_steady and i != n - 2
        changed = i > 0 and gripper_open[i] != gripper_open[i - 1]
        if i > 0 and (changed or rest or i == n - 1):
            keys.append(i)
            moved = False
    if len(keys) > 1 and keys[-1] - 1 == keys[-2]:
        keys.pop(-2)
    return keys


def gripper_open_states(actions: np.ndarray) -> np.ndarray:
    """(T,) whether the gripper is open at each step: the command of the action before (open when
    negative; step 0 takes its own), the command and not the measured opening, which never reaches
    "closed" around an object."""
    commands = np.asarray(actions)[:, -1]
    return np.concatenate([commands[:1], commands[:-1]]) < 0


def episode_keyframes(states: np.ndarray, actions: np.ndarray, control_hz: float = CONTROL_HZ) -> list[int]:
    """Keyframes of a recorded rlbench_like episode (either action mode).

    states: (T, S) the `state` observations (joint positions are in it, STATE_NAMES); actions: (T, A)
    with the gripper command last. The gripper state at step t is the command of action t - 1 (open
    when negative): the command, not the measured opening, which never reaches "closed" around an
    object. Joint velocities are finite differences of the joint positions.
    """
    states, actions = np.asarray(states), np.asarray(actions)
    gripper_open = gripper_open_states(actions)
    joints = states[:, _JOINT_COLUMNS]
    velocities = np.gradient(joints, 1.0 / control_hz, axis=0) if len(joints) > 1 else np.zeros_like(joints)
    return keyframes(gripper_open, velocities)


def demonstration_keyframes(states: np.ndarray, actions: np.ndarray, finger_contact: np.ndarray) -> dict[str, Any]:
    """`keyframes` (PerAct), `finger_contact` (per step: a finger touching something not the robot) and
    `subgoals` (GravMAD's sub-goal keyframes, subgoals.py) of a recorded episode: states (T, S) and actions
    (T, A) as `episode_keyframes` takes them, finger_contact (T,) bool at each observation."""
    keys = episode_keyframes(states, actions)
    contact = np.asarray(finger_contact, bool)
    return {
        "keyframes": keys,
        "finger_contact": [bool(c) for c in contact],
        "subgoals": subgoal_keyframes(keys, gripper_open_states(actions), contact),
    }


def annotate(episode: Any, env: Any) -> dict[str, Any]:
    """The suite's per-episode metadata for the collector (`demonstration_keyframes`), from the Episode and
    the env that recorded it."""
    actions = np.asarray(episode.actions)
    return demonstration_keyframes(episode.observations["state"], actions, env.contact_history[: len(actions)])

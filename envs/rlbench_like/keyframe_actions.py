"""Keyframe transitions of a dense demonstration: which observations a keyframe policy learns from, and
the keyframe action (the next keyframe's tcp pose and gripper state) each one is labelled with.

PerAct's recipe (`helpers/demo_loading_utils.py`, `agents/peract_bc/launch_utils.py`): the observation
at the start and at every keyframe is labelled with the pose and gripper state at the next keyframe;
with `every_n` > 0 (PerAct's demo augmentation, `demo_augmentation_every_n: 10`) every n-th step in
between is labelled with the keyframe that follows it too, so one demonstration gives more samples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from polyact.contract import EnvSpec
from polyact.envs.rlbench_like.arm import KEYFRAME_STATE_NAMES, STATE_NAMES, action_spec
from polyact.envs.rlbench_like.keyframes import episode_keyframes, gripper_open_states
from polyact.envs.rlbench_like.motion import KEYFRAME_EPISODE_STEPS, pose_action

_POSE = slice(STATE_NAMES.index("ee_x"), STATE_NAMES.index("ee_qz") + 1)


@dataclass(frozen=True)
class KeyframeTransitions:
    """The keyframe version of one dense episode: N samples."""

    steps: np.ndarray  # (N,) the dense observation step of each sample
    targets: np.ndarray  # (N,) the keyframe step each sample is labelled with
    states: np.ndarray  # (N, S + 1) the sample's state plus `keyframes_done` (keyframes before it)
    actions: np.ndarray  # (N, 7) the keyframe action: tcp pose at the target and the gripper state there


def keyframe_transitions(
    states: np.ndarray, actions: np.ndarray, keyframes: list[int] | None = None, every_n: int = 0
) -> KeyframeTransitions:
    """The keyframe transitions of one dense episode of T steps.

    states: (T, S) `state` observations; actions: (T, A) with the gripper command last (either dense
    action mode); keyframes: the episode's keyframe steps (None: found with `episode_keyframes`).
    The gripper state at a keyframe is +1 closed or -1 open, by `gripper_open_states` (the rule
    `episode_keyframes` uses). `keyframes_done` at a sample counts the keyframes at or before it:
    the number of keyframe actions the keyframe env has executed when it shows that observation.
    """
    states, actions = np.asarray(states), np.asarray(actions)
    if states.ndim != 2 or actions.ndim != 2 or len(states) != len(actions):
        raise ValueError(f"states (T, S) and actions (T, A) must share T; got {states.shape} and {actions.shape}")
    if states.shape[1] < len(STATE_NAMES):  # more follow with env.task_state
        raise ValueError(
            f"states must begin with the rlbench_like state's {len(STATE_NAMES)} columns, got {states.shape[1]}"
        )
    keys = np.array(sorted(episode_keyframes(states, actions) if keyframes is None else keyframes), dtype=np.int64)
    if len(keys) == 0 or keys[0] <= 0 or keys[-1] >= len(states):
        raise ValueError(f"keyframes {keys.tolist()} must be non-empty steps in 1..{len(states) - 1}")
    chosen = {0, *keys[:-1].tolist()}
    if every_n > 0:
        chosen.update(range(0, int(keys[-1]), every_n))
    steps = np.array(sorted(chosen), dtype=np.int64)
    done = np.searchsorted(keys, steps, side="right")
    targets = keys[done]
    open_at_target = gripper_open_states(actions)[targets]
    labels = np.stack(
        [
            pose_action(states[t, _POSE][:3], states[t, _POSE][3:], -1.0 if is_open else 1.0)
            for t, is_open in zip(targets, open_at_target, strict=True)
        ]
    )
    with_count = np.concatenate([states[steps], done[:, None].astype(states.dtype)], axis=1)
    return KeyframeTransitions(steps, targets, with_count, labels)


def keyframe_spec(spec: EnvSpec) -> EnvSpec:
    """The contract of the keyframe action mode for a dense-mode spec of this suite (same observations)."""
    return replace(
        spec,
        state_names=(*spec.state_names, KEYFRAME_STATE_NAMES[-1]),  # the count follows the state, as above
        action=action_spec("keyframe", None),
        max_episode_steps=KEYFRAME_EPISODE_STEPS,
        notes={**spec.notes, "action_mode": "keyframe"},
    )

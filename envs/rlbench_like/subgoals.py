"""Sub-goal keyposes of a demonstration, as GravMAD's Sub-goal Keypose Discovery defines them.

GravMAD (Chen et al., ICLR 2025, Appendix A.2, Algorithm 4) keeps, of PerAct's keyframes, those where
the gripper's interaction with the world changes: the gripper opened or closed within the 2 steps before
the keyframe, or the fingers started or stopped touching something within the 4 steps before it
(RLBench's fingertip touch forces, zero or not), plus the last keyframe. Approach and pre-grasp pauses
drop out, so a task has about one sub-goal per stage. The windows are those of the same group's code
(chenzixuan99/RoboHiMan d18332b, src/utils/data_engine.py:34-68), as GravMAD's own is unpublished;
docs/gravmad_reference.md has the sources. Here "touching" is a MuJoCo contact between a finger and any
geom that is not the robot's, recorded by the env at every step (`finger_contact`).

`subgoal_labels` gives each sample of a keyframe dataset its sub-goal (`polyact data keyframes`), and
`subgoal_actions` the demonstration's sub-goals in order (the env's sub-goal oracle, subgoal_oracle.py):
one rule for both, so that the oracle's sub-goals are the ones a conditioned policy was trained on.
"""

from __future__ import annotations

import numpy as np

from polyact.errors import DatasetError

GRIPPER_WINDOW = 2
CONTACT_WINDOW = 4


def _changed_within(flags: np.ndarray, step: int, window: int) -> bool:
    """Whether flags[step] differs from any of the `window` values before it."""
    return bool(np.any(flags[max(step - window, 0) : step] != flags[step]))


def subgoal_keyframes(keyframes: list[int], gripper_open: np.ndarray, finger_contact: np.ndarray) -> list[int]:
    """The sub-goal keyframes among `keyframes` (step indices); gripper_open and finger_contact are
    (T,) bools per step."""
    keys = sorted(int(k) for k in keyframes)
    if not keys:
        return []
    gripper_open, finger_contact = np.asarray(gripper_open, bool), np.asarray(finger_contact, bool)
    if len(gripper_open) != len(finger_contact) or keys[-1] >= len(gripper_open):
        raise ValueError(
            f"gripper_open ({len(gripper_open)}) and finger_contact ({len(finger_contact)}) must both cover "
            f"every keyframe up to {keys[-1]}"
        )
    chosen = [
        k
        for k in keys[:-1]
        if _changed_within(gripper_open, k, GRIPPER_WINDOW) or _changed_within(finger_contact, k, CONTACT_WINDOW)
    ]
    return [*chosen, keys[-1]]


def subgoal_actions(targets: np.ndarray, actions: np.ndarray, subgoals: list[int]) -> np.ndarray:
    """The keyframe action of each sub-goal keyframe, in order (G, A). targets (N,) and actions (N, A) are a
    demonstration's keyframe transitions (keyframe_actions.py): the keyframe each sample heads for and its
    label; every sub-goal must be one of the targets (sub-goals are keyframes)."""
    goals = sorted(int(g) for g in subgoals)
    if not goals:
        raise DatasetError("an episode records no sub-goals; GravMAD's rule keeps at least its last keyframe")
    label_of = {int(t): actions[i] for i, t in enumerate(targets)}
    missing = sorted(set(goals) - set(label_of))
    if missing:
        raise DatasetError(f"sub-goals {missing} are not keyframes of the episode (keyframes: {sorted(label_of)})")
    return np.stack([label_of[g] for g in goals]).astype(np.float32)


def subgoal_labels(steps: np.ndarray, targets: np.ndarray, actions: np.ndarray, subgoals: list[int]) -> np.ndarray:
    """Each sample's sub-goal (N, A): the keyframe action of the first sub-goal keyframe after its dense step,
    or of the last one when none is left, as GravMAD's group assigns them (RoboHiMan d18332b,
    src/utils/data_engine.py:90-91; docs/gravmad_reference.md). steps (N,) are the samples' dense steps;
    targets and actions as `subgoal_actions` takes them."""
    ordered = subgoal_actions(targets, actions, subgoals)
    goals = np.array(sorted(subgoals), dtype=np.int64)
    after = np.minimum(np.searchsorted(goals, steps, side="right"), len(goals) - 1)
    return ordered[after]

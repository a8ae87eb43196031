"""The sub-goal oracle (`env.subgoal_oracle=true`): the scripted expert's sub-goals for the episode's own seed.

A GravMap policy (policy.subgoal_conditioning=gravmap) learns from the `subgoal` feature of a keyframe
dataset and, at test time, takes its sub-goal from a learned predictor, which knows held-out variations
no better than the policy does (docs/rlbench_like.md, "Sub-goal conditioning"). GravMAD's claim is that
a sub-goal source that generalises helps; here the simulator is one, since the scripted expert solves
every seed. At reset the oracle runs the expert from the same seed and variation in a private dense-mode
copy of the task, finds that demonstration's keyframes and GravMAD sub-goals with the collector's own
functions (`demonstration_keyframes`), turns them into keyframe actions with `polyact data keyframes`'
(`keyframe_transitions`, `subgoal_actions`), and then gives every observation of the episode the first
sub-goal it has not reached yet, in the dataset's format: a keyframe action (x, y, z, roll, pitch, yaw,
gripper +1 closed / -1 open).

"Not yet reached" stands in for the dataset's "first sub-goal keyframe after this sample" because an
episode's keyframes are the policy's, not the demonstration's: there is no demonstration step to place
an observation after, only where the arm is. A sub-goal is reached when, at an observation, the tcp lies
within REACHED_POS of its position and the gripper command is in its state (open or closed); orientation
is not compared. That is twice as loose as the keyframe mode's own `reached` (1 cm and 0.1 rad, motion.py),
which asks whether the arm got where the policy sent it: a policy's grasp a little beside the
demonstration's still grasps. Sub-goals are taken in order, and the last stays once reached, as the
dataset labels every sample after the last sub-goal with it. A demonstration that failed (a few seeds per
hundred, docs/rlbench_like.md "Experts") still gives the sub-goals it found; `demonstration_success` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.keyframe_actions import keyframe_transitions
from polyact.envs.rlbench_like.keyframes import demonstration_keyframes
from polyact.envs.rlbench_like.subgoals import subgoal_actions
from polyact.envs.rlbench_like.tasks.base import Task

REACHED_POS = 0.02  # m: the tcp within this of a sub-goal's position (with its gripper state) reaches it


class StatesOnlyEnv(RLBenchLikeEnv):
    """The task's env without images: the expert reads the privileged state and the keyframe rule the
    `state`, and rendering even one 8x8 camera costs some 25 times a demonstration's physics."""

    def _observation(self) -> dict[str, Any]:
        return {"state": np.asarray(self._proprio(), np.float32), "instruction": self.instruction}


@dataclass(frozen=True)
class Demonstration:
    """The expert's dense episode as the collector records it: T observations and the actions taken there."""

    states: np.ndarray  # (T, S) the `state` observations
    actions: np.ndarray  # (T, A)
    finger_contact: np.ndarray  # (T,) bool, at each observation
    success: bool


def demonstrate(env: RLBenchLikeEnv, seed: int, options: dict[str, Any]) -> Demonstration:
    """The scripted expert's episode from `env.reset(seed, options)` (a dense-mode env), ended as
    `polyact collect` ends it (collect.record_episode): once the task has succeeded and the script is done,
    or at the step limit."""
    expert = ScriptedExpert(env)
    obs, info = env.reset(seed=seed, options=options)
    states, actions, succeeded = [], [], False
    while True:
        action = expert.act(obs, info)
        states.append(obs["state"])
        obs, _, terminated, truncated, info = env.step(action)
        actions.append(env.contract.check_action(action))
        succeeded = succeeded or info["success"]
        if (succeeded and expert.finished) or terminated or truncated:
            break
    contact = np.asarray(env.contact_history[: len(actions)], bool)
    return Demonstration(np.stack(states), np.stack(actions), contact, succeeded)


def demonstration_subgoals(demo: Demonstration) -> np.ndarray:
    """The demonstration's sub-goals in order, as keyframe actions (G, 7): what `polyact data keyframes`
    labels its samples with."""
    found = demonstration_keyframes(demo.states, demo.actions, demo.finger_contact)
    kf = keyframe_transitions(demo.states, demo.actions, found["keyframes"])
    return subgoal_actions(kf.targets, kf.actions, found["subgoals"])


def reaches(subgoal: np.ndarray, tcp_pos: np.ndarray, gripper_open: bool) -> bool:
    """Whether a tcp at `tcp_pos` with the gripper open or closed reaches `subgoal` (a keyframe action)."""
    near = float(np.linalg.norm(np.asarray(tcp_pos) - subgoal[:3])) <= REACHED_POS
    return near and gripper_open == bool(subgoal[-1] < 0)


class SubgoalOracle:
    """The sub-goals of one env's episodes. `reset(seed, options, ...)` at the env's reset, `observe(...)` at
    each observation, `subgoal` what the observation carries.

    The expert demonstrates in a private dense-mode env of the same task and variation split, as the
    demonstrations were collected: its own model, data and random generator, so the episode's state and
    draws are untouched by the demonstration."""

    def __init__(self, task: Task, cfg: EnvConfig, split: str):
        dense = replace(cfg, action_mode="default", subgoal_oracle=False, max_episode_steps=0, height=8, width=8)
        self.demo_env = StatesOnlyEnv(type(task)(), dense, split)
        self.subgoals = np.zeros((0, 7), np.float32)  # (G, 7) this episode's, in order
        self.reached = 0  # how many of them the episode has reached
        self.demonstration_success = False

    def reset(self, seed: int, options: dict[str, Any], tcp_pos: np.ndarray, gripper_open: bool) -> None:
        demo = demonstrate(self.demo_env, seed, options)
        self.subgoals = demonstration_subgoals(demo)
        self.demonstration_success = demo.success
        self.reached = 0
        self.observe(tcp_pos, gripper_open)

    def observe(self, tcp_pos: np.ndarray, gripper_open: bool) -> None:
        """Count the sub-goals the arm is at now, in order from the first not yet reached."""
        while self.reached < len(self.subgoals) and reaches(self.subgoals[self.reached], tcp_pos, gripper_open):
            self.reached += 1

    @property
    def subgoal(self) -> np.ndarray:
        """(7,) float32: the first sub-goal not yet reached, or the last once all are."""
        return self.subgoals[min(self.reached, len(self.subgoals) - 1)].copy()

    def close(self) -> None:
        self.demo_env.close()

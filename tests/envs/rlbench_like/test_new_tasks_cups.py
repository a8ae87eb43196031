"""stack_cups and place_cups beyond what test_tasks.py and test_keyframe_mode.py check of every task: two
and three mugs are hung (three within the 25 keyframes), and doing what another variation asks does not
count."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest

from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.tasks.place_cups import PlaceCups
from polyact.envs.rlbench_like.tasks.stack_cups import TOLERANCE, StackCups

from .conftest import run_expert

MUG_WAYPOINTS = 8  # PlaceCups.script's waypoints for one mug


def _never_succeeds(env: RLBenchLikeEnv, policy, seed: int, variation: int, steps: int) -> bool:
    obs, info = env.reset(seed=seed, options={"variation": variation})
    for _ in range(steps):
        obs, _, _, _, info = env.step(policy(obs, info))
        if info["success"]:
            return False
    return True


@pytest.mark.parametrize("seed", [0, 1])
def test_place_cups_expert_hangs_two_mugs(task_env, seed):
    assert run_expert(task_env(PlaceCups(), split="train"), seed, variation=1)


def test_cups_stacked_in_another_colour_do_not_count(task_env, monkeypatch):
    """The expert is told a distractor cup is the target: it stacks the other two (the named cup among
    them) into it, which must never count."""
    env = task_env(StackCups(), split="train")
    task = env.task_impl
    privileged = task.privileged

    def swapped(sim):
        s = privileged(sim)
        return {key: [v[1], v[0], v[2]] for key, v in s.items()}  # cup1 presented as the target

    monkeypatch.setattr(task, "privileged", swapped)
    expert = ScriptedExpert(env)
    assert _never_succeeds(env, expert.act, seed=0, variation=0, steps=300)  # the expert ends by about 250
    assert expert.finished
    base = env.sim.pos("cup1")
    for cup in ("cup0", "cup2"):  # the wrong stack was built
        assert np.linalg.norm(env.sim.pos(cup)[:2] - base[:2]) < TOLERANCE


def test_one_mug_hung_when_two_are_asked_does_not_count(task_env, monkeypatch):
    """Hanging one mug succeeds in the one-mug variation and fails in the two-mug one (same seed, so the
    same layout); the expert's waypoints for one mug are replayed in both."""
    env = task_env(PlaceCups(), split="train")
    assert run_expert(env, seed=2, variation=0)
    script = env.task_impl.script
    monkeypatch.setattr(env.task_impl, "script", lambda p: islice(script(p), MUG_WAYPOINTS))
    expert = ScriptedExpert(env)
    assert _never_succeeds(env, expert.act, seed=2, variation=1, steps=220)  # one mug: about 170 steps
    assert expert.finished  # the first mug's waypoints all ran


@pytest.mark.parametrize("seed", [0, 1])
def test_place_cups_expert_keyframes_hang_three_mugs(task_env, seed):
    """Three mugs take 24 keyframes, within the 25 a keyframe episode allows."""
    env = task_env(PlaceCups(), split="train", action_mode="keyframe")
    assert run_expert(env, seed, variation=2)

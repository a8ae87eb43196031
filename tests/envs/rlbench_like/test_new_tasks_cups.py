"""stack_cups and place_cups: the scripted expert succeeds (dense and keyframe actions), doing nothing fails,
and doing what another variation asks does not count. Envs are built from the task classes directly, as
the suite's registry does not list these tasks yet."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.tasks.place_cups import PlaceCups
from polyact.envs.rlbench_like.tasks.stack_cups import TOLERANCE, StackCups

MUG_WAYPOINTS = 8  # PlaceCups.script's waypoints for one mug


@pytest.fixture
def make_env():
    envs = []

    def make(task_cls, action_mode: str = "default", split: str = "train") -> RLBenchLikeEnv:
        # `tasks` only has to name a known task set: the env reads the cameras, image size and action mode.
        cfg = EnvConfig(tasks="RLB-all", cameras=["wrist"], height=8, width=8, action_mode=action_mode)
        env = RLBenchLikeEnv(task_cls(), cfg, default_split=split)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


def _run_expert(env: RLBenchLikeEnv, seed: int, variation: int | None = None) -> bool:
    """Whether the scripted expert succeeds within the env's step limit."""
    expert = ScriptedExpert(env)
    obs, info = env.reset(seed=seed, options={} if variation is None else {"variation": variation})
    for _ in range(env.contract.max_episode_steps):
        obs, _, _, _, info = env.step(expert.act(obs, info))
        if info["success"]:
            return True
    return False


def _never_succeeds(env: RLBenchLikeEnv, policy, seed: int, variation: int, steps: int) -> bool:
    obs, info = env.reset(seed=seed, options={"variation": variation})
    for _ in range(steps):
        obs, _, _, _, info = env.step(policy(obs, info))
        if info["success"]:
            return False
    return True


@pytest.mark.parametrize("seed", [0, 1])
def test_stack_cups_expert_succeeds(make_env, seed):
    assert _run_expert(make_env(StackCups), seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_place_cups_expert_hangs_two_mugs(make_env, seed):
    assert _run_expert(make_env(PlaceCups), seed, variation=1)


@pytest.mark.parametrize("task_cls", [StackCups, PlaceCups])
def test_doing_nothing_fails(make_env, task_cls):
    env = make_env(task_cls)
    still = np.zeros(env.action_space.shape, np.float32)
    still[-1] = -1.0  # gripper open
    assert _never_succeeds(env, lambda obs, info: still, seed=1, variation=0, steps=30)


def test_cups_stacked_in_another_colour_do_not_count(make_env, monkeypatch):
    """The expert is told a distractor cup is the target: it stacks the other two (the named cup among
    them) into it, which must never count."""
    env = make_env(StackCups)
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


def test_one_mug_hung_when_two_are_asked_does_not_count(make_env, monkeypatch):
    """Hanging one mug succeeds in the one-mug variation and fails in the two-mug one (same seed, so the
    same layout); the expert's waypoints for one mug are replayed in both."""
    env = make_env(PlaceCups)
    assert _run_expert(env, seed=2, variation=0)
    script = env.task_impl.script
    monkeypatch.setattr(env.task_impl, "script", lambda p: islice(script(p), MUG_WAYPOINTS))
    expert = ScriptedExpert(env)
    assert _never_succeeds(env, expert.act, seed=2, variation=1, steps=220)  # one mug: about 170 steps
    assert expert.finished  # the first mug's waypoints all ran


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stack_cups_expert_keyframes_solve(make_env, seed):
    env = make_env(StackCups, action_mode="keyframe", split="all")
    assert _run_expert(env, seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_place_cups_expert_keyframes_hang_three_mugs(make_env, seed):
    """Three mugs take 24 keyframes, within the 25 a keyframe episode allows."""
    env = make_env(PlaceCups, action_mode="keyframe")
    assert _run_expert(env, seed, variation=2)

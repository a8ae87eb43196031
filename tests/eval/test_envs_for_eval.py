"""The environment pieces evaluation stands on: a multi-task env, per-env reset options, info splitting,
and the worker env's episode ends, idling, recording and expert actions."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.multitask import MultiTaskEnv
from polyact.envs.vector import reset_envs, split_infos, vector_env
from polyact.errors import UnknownNameError
from polyact.eval.worker import EvalEnv, Recording

CFG = EnvConfig(tasks="MT10", height=32, width=32, max_episode_steps=60)


def test_split_infos_undoes_gymnasiums_batching():
    batched = {
        "success": np.array([True, False, True]),
        "_success": np.array([True, True, False]),
        "nested": {"a": np.array([1, 2, 3]), "_a": np.array([False, True, False])},
        "_nested": np.array([False, True, False]),
    }
    assert split_infos(batched, 3) == [{"success": True}, {"success": False, "nested": {"a": 2}}, {}]


def test_closing_one_environment_leaves_the_others_frames_intact():
    """Each env renders with its own GL context. Freeing a renderer once freed its textures and
    framebuffers in whichever context was current (a newer env's), so every task a worker reached
    after its first `max_envs` rendered garbage: the frames must equal a fresh env's after any closes."""
    cfg = EnvConfig(tasks="MT10", cameras=["corner"], height=32, width=32)
    env = MultiTaskEnv(cfg, "reach-v3", max_envs=1)
    try:
        frames = {}
        for task in ("reach-v3", "push-v3", "pick-place-v3", "push-v3"):  # each switch closes the last env
            obs, _ = env.reset(seed=3, options={"task": task})
            frames.setdefault(task, []).append(obs["rgb/corner"])
        for task in ("push-v3", "pick-place-v3"):
            fresh = MultiTaskEnv(EnvConfig(tasks=task, cameras=["corner"], height=32, width=32))
            try:
                expected, _ = fresh.reset(seed=3)
            finally:
                fresh.close()
            for frame in frames[task]:
                np.testing.assert_array_equal(frame, expected["rgb/corner"])
    finally:
        env.close()


@pytest.mark.slow
def test_multitask_env_switches_tasks_and_closes_the_least_recently_used():
    env = MultiTaskEnv(CFG, "reach-v3", max_envs=2)
    try:
        obs, _ = env.reset(seed=1, options={"task": "push-v3"})
        assert env.task == "push-v3" and env.contract.tasks == ("push-v3",)
        direct_goal = obs["goal"].copy()
        env.reset(seed=1, options={"task": "pick-place-v3"})
        assert list(env._envs) == ["push-v3", "pick-place-v3"]  # reach-v3 was closed
        obs, _ = env.reset(seed=1, options={"task": "push-v3"})
        np.testing.assert_array_equal(obs["goal"], direct_goal)
        obs, _ = env.reset(seed=2)  # no task option: the current task
        assert env.task == "push-v3"
        with pytest.raises(UnknownNameError, match="task of MT10 'disassemble-v3'"):
            env.reset(seed=1, options={"task": "disassemble-v3"})
    finally:
        env.close()


@pytest.mark.slow
def test_eval_env_ends_at_success_records_and_idles():
    vec = vector_env(
        [partial(EvalEnv, CFG, "reach-v3", True)] * 2,
        asynchronous=False,
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )
    try:
        requests = {
            0: (1_000_000, {"task": "reach-v3", "record": True}),
            1: (1_000_000, {"task": "push-v3", "record": False}),
        }
        obs, infos = reset_envs(vec, requests)
        assert obs["instruction"][0] and all("expert_action" in info for info in infos)
        steps, ended = 0, {}
        while len(ended) < 2:
            actions = np.stack([infos[i].get("expert_action", np.zeros(4, np.float32)) for i in range(2)])
            obs, _, terminated, truncated, batched = vec.step(actions)
            infos = split_infos(batched, 2)
            steps += 1
            for i in range(2):
                if (terminated[i] or truncated[i]) and i not in ended:
                    ended[i] = (steps, bool(terminated[i]), infos[i])
                    reset_envs(vec, {i: (None, {"idle": True})})  # park it, as the rollout does
        reach_steps, reach_terminated, reach_info = ended[0]
        assert reach_terminated and reach_info["success"]  # success ends the episode
        assert isinstance(reach_info["recording"], Recording)
        assert reach_info["recording"].frames.shape == (reach_steps + 1, 32, 32, 3)
        push_steps, push_terminated, push_info = ended[1]
        assert (push_steps, push_terminated) == (60, False) and "recording" not in push_info  # step limit
        frozen = obs["state"].copy()
        obs, _, terminated, truncated, batched = vec.step(np.ones((2, 4), np.float32))
        np.testing.assert_array_equal(obs["state"], frozen)  # parked workers do not simulate
        assert not terminated.any() and not truncated.any()
    finally:
        vec.close()

"""The MJX backend of rlbench_like against the CPU backend: the same layouts, the same physics within a
stated tolerance over a stated horizon, and the CPU experts' actions succeeding when replayed on MJX.

Compiling an MJX step takes minutes on a busy 2-core machine, so each task's batch is built once per
module and every test of that task shares it (batch size 2: two seeds, two variations)."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like import TASKS
from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.mjx.batch import MJXBatch
from polyact.envs.rlbench_like.mjx.model import out_of_scope

# Slow: the first test of each task compiles its MJX step (about 2 CPU-minutes), past pyproject's 300 s
# per-test timeout on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
SEEDS = (0, 1)
# The tasks compared so far; pick_and_lift and slide_block_to_color_target (SUPPORTED_TASKS) are next.
TESTED = ("reach_target",)
# qpos within this of the CPU backend's (rad for joints, m for positions) over the whole expert episode
TOLERANCE = {"reach_target": 1e-3, "pick_and_lift": 1e-2, "slide_block_to_color_target": 1e-2}


def cpu_expert_episode(task: str, seed: int) -> dict[str, np.ndarray]:
    """The CPU env's expert episode: its actions, qpos after reset and after every step, success per step,
    and whether any out-of-MJX-scope geom touched anything."""
    env = RLBenchLikeEnv(TASKS[task](), EnvConfig(tasks="RLB-all", cameras=["wrist"], height=8, width=8))
    try:
        expert = ScriptedExpert(env)
        obs, info = env.reset(seed=seed)
        off = out_of_scope(env.model)
        actions, qpos, success, touched = [], [env.data.qpos.copy()], [], False
        while not expert.finished and len(actions) < env.contract.max_episode_steps:
            action = expert.act(obs, info)
            obs, _, _, _, info = env.step(action)
            con = env.data.contact
            touched |= bool(np.isin(con.geom1, off).any() or np.isin(con.geom2, off).any())
            actions.append(action)
            qpos.append(env.data.qpos.copy())
            success.append(info["success"])
        return {
            "actions": np.array(actions),
            "qpos": np.array(qpos),
            "success": np.array(success),
            "touched": touched,
            "instruction": obs["instruction"],
        }
    finally:
        env.close()


def held(actions: np.ndarray, t: int) -> np.ndarray:
    """The t-th action, or after the episode's last one a hold: no motion, the last gripper command."""
    if t < len(actions):
        return actions[t]
    return np.concatenate([np.zeros(6), actions[-1, -1:]])


@pytest.fixture(scope="module")
def replay():
    """Per task: the CPU episodes of SEEDS and their replay on one MJX batch (qpos per step, success)."""
    cache = {}

    def get(task: str):
        if task not in cache:
            cpu = [cpu_expert_episode(task, s) for s in SEEDS]
            batch = MJXBatch(TASKS[task]())
            instructions = batch.reset(SEEDS)
            qpos, success = [batch.qpos], []
            steps = max(len(c["actions"]) for c in cpu)
            for t in range(steps):
                act = np.stack([held(c["actions"], t) for c in cpu])
                success.append(np.asarray(batch.step(act)))
                qpos.append(batch.qpos)
            cache[task] = (
                cpu,
                {
                    "qpos": np.array(qpos),
                    "success": np.array(success),
                    "instructions": instructions,
                    "mocap_pos": np.asarray(batch.d.mocap_pos),
                    "batch": batch,
                },
            )
        return cache[task]

    return get


@pytest.mark.parametrize("task", TESTED)
def test_reset_lays_out_what_the_cpu_env_lays_out(replay, task):
    cpu, mjx = replay(task)
    for i, c in enumerate(cpu):
        assert mjx["instructions"][i] == c["instruction"]
        np.testing.assert_allclose(mjx["qpos"][0, i], c["qpos"][0], atol=TOLERANCE[task])


@pytest.mark.parametrize("task", TESTED)
def test_expert_trajectories_match_the_cpu_backend(replay, task):
    cpu, mjx = replay(task)
    for i, c in enumerate(cpu):
        assert not c["touched"], "an out-of-scope geom touched something: the MJX scope would change physics"
        n = len(c["qpos"])
        err = np.abs(mjx["qpos"][:n, i] - c["qpos"]).max()
        assert err < TOLERANCE[task], f"seed {SEEDS[i]}: max |qpos error| {err:.2e} over {n - 1} steps"


@pytest.mark.parametrize("task", TESTED)
def test_cpu_expert_actions_succeed_on_mjx(replay, task):
    cpu, mjx = replay(task)
    for i, c in enumerate(cpu):
        assert c["success"].any(), f"the CPU expert failed seed {SEEDS[i]}"
        assert mjx["success"][: len(c["success"]), i].any()


def test_each_environment_depends_on_its_own_seed_only(replay):
    """Reset again with the seeds swapped: each environment's layout (the welded props' poses, mocap bodies
    on MJX; the arm always starts at home) is its seed's, wherever it sits in the batch."""
    task = TESTED[0]
    _, mjx = replay(task)
    batch = mjx["batch"]
    batch.reset(SEEDS[::-1])
    mocap_pos = np.asarray(batch.d.mocap_pos)
    np.testing.assert_array_equal(mocap_pos[::-1], mjx["mocap_pos"])
    np.testing.assert_array_equal(batch.qpos[::-1], mjx["qpos"][0])
    assert not np.allclose(mocap_pos[0], mocap_pos[1])

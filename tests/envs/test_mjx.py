"""The MJX backend of rlbench_like against the CPU backend, on the CPU experts' episodes (seeds 0 and 1).

What each test guards:
- test_reset_shapes_and_layouts: batched reset gives (N, ...) state and the layout, instruction and settled
  qpos the CPU env gives for each seed (the task's own numpy reset, moved to the device).
- test_expert_trajectories_match_the_cpu_backend: the CPU expert's actions replayed on MJX keep qpos within
  TOLERANCE of the CPU backend's over the whole expert episode (reach_target: about 20 control steps), and
  no geom taken out of MJX's collision scope touched anything on the CPU (model.py's premise).
- test_cpu_expert_actions_succeed_on_mjx: the replay's own success flags (physics + success test in JAX).
- test_success_on_recorded_states: every supported task's success test in JAX agrees with the CPU task's on
  every state of the CPU expert's episodes (the CPU's body and site poses set in mjx.Data: neither physics
  nor kinematics is compiled, so all of SUPPORTED_TASKS stay cheap; MJX's kinematics are checked by the
  replay and by test_mjx_kinematics.py).
- test_each_environment_depends_on_its_own_seed_only: per-environment determinism within a batch of 2.

The physics replay is reach_target only: compiling a task's MJX step dominates (about a minute on this
2-core CPU), so one batch (N=2) is built per module and shared."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like import TASKS
from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.mjx.batch import MJXBatch
from polyact.envs.rlbench_like.mjx.model import SUPPORTED_TASKS, out_of_scope

# Slow: compiling the MJX step takes a minute or more, past pyproject's 300 s per-test timeout when busy.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
SEEDS = (0, 1)
REPLAYED = "reach_target"  # the task whose physics is replayed on MJX
# qpos within this of the CPU backend's (rad for joints, m for positions) over the whole expert episode
TOLERANCE = 1e-3


def cpu_expert_episode(task: str, seed: int) -> dict[str, np.ndarray]:
    """The CPU env's expert episode: its actions, qpos after reset and after every step, body and site poses
    and success after every step, and whether any out-of-MJX-scope geom touched anything."""
    env = RLBenchLikeEnv(TASKS[task](), EnvConfig(tasks="RLB-all", cameras=["wrist"], height=8, width=8))
    try:
        expert = ScriptedExpert(env)
        obs, info = env.reset(seed=seed)
        off = out_of_scope(env.model)
        actions, qpos, success, touched = [], [env.data.qpos.copy()], [], False
        poses = {"xpos": [], "site_xpos": []}
        while not expert.finished and len(actions) < env.contract.max_episode_steps:
            action = expert.act(obs, info)
            obs, _, _, _, info = env.step(action)
            con = env.data.contact
            touched |= bool(np.isin(con.geom1, off).any() or np.isin(con.geom2, off).any())
            actions.append(action)
            qpos.append(env.data.qpos.copy())
            for field, kept in poses.items():
                kept.append(getattr(env.data, field).copy())
            success.append(info["success"])
        return {
            "actions": np.array(actions),
            "qpos": np.array(qpos),
            "success": np.array(success),
            "poses": {field: np.array(kept) for field, kept in poses.items()},
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
def cpu():
    """Per task, the CPU expert episodes of SEEDS (computed once)."""
    cache = {}

    def get(task: str) -> list[dict[str, np.ndarray]]:
        if task not in cache:
            cache[task] = [cpu_expert_episode(task, s) for s in SEEDS]
        return cache[task]

    return get


@pytest.fixture(scope="module")
def replay(cpu):
    """REPLAYED's CPU episodes replayed on one MJX batch of 2: qpos per step, success, the batch."""
    episodes = cpu(REPLAYED)
    batch = MJXBatch(TASKS[REPLAYED]())
    instructions = batch.reset(SEEDS)
    reset = {"qpos": batch.qpos, "mocap_pos": np.asarray(batch.d.mocap_pos), "instructions": instructions}
    qpos, success = [batch.qpos], []
    for t in range(max(len(c["actions"]) for c in episodes)):
        success.append(np.asarray(batch.step(np.stack([held(c["actions"], t) for c in episodes]))))
        qpos.append(batch.qpos)
    return {"qpos": np.array(qpos), "success": np.array(success), "reset": reset, "batch": batch}


def test_reset_shapes_and_layouts(cpu, replay):
    batch, reset = replay["batch"], replay["reset"]
    assert reset["qpos"].shape == (len(SEEDS), batch.model.nq)
    assert reset["mocap_pos"].shape == (len(SEEDS), batch.model.nmocap, 3)
    assert replay["success"].shape[1:] == (len(SEEDS),) and replay["success"].dtype == bool
    for i, c in enumerate(cpu(REPLAYED)):
        assert reset["instructions"][i] == c["instruction"]
        np.testing.assert_allclose(reset["qpos"][i], c["qpos"][0], atol=TOLERANCE)


def test_expert_trajectories_match_the_cpu_backend(cpu, replay):
    for i, c in enumerate(cpu(REPLAYED)):
        assert not c["touched"], "an out-of-scope geom touched something: the MJX scope would change physics"
        n = len(c["qpos"])
        err = np.abs(replay["qpos"][:n, i] - c["qpos"]).max()
        assert err < TOLERANCE, f"seed {SEEDS[i]}: max |qpos error| {err:.2e} over {n - 1} steps"


def test_cpu_expert_actions_succeed_on_mjx(cpu, replay):
    for i, c in enumerate(cpu(REPLAYED)):
        assert c["success"].any(), f"the CPU expert failed seed {SEEDS[i]}"
        assert replay["success"][: len(c["success"]), i].any()


@pytest.mark.parametrize("task", SUPPORTED_TASKS)
def test_success_on_recorded_states(cpu, task):
    """The CPU episodes' body and site poses after each step through the JAX success test."""
    episodes = cpu(task)
    expected = np.concatenate([c["success"] for c in episodes])
    assert expected.any() and not expected.all(), "the episodes must hold states either side of success"
    poses = {k: np.concatenate([c["poses"][k] for c in episodes]) for k in episodes[0]["poses"]}
    np.testing.assert_array_equal(MJXBatch(TASKS[task]()).success_at(poses), expected)


def test_each_environment_depends_on_its_own_seed_only(replay):
    """Reset again with the seeds swapped: each environment's layout (the welded props' poses, mocap bodies
    on MJX; the arm always starts at home) is its seed's, wherever it sits in the batch."""
    batch, reset = replay["batch"], replay["reset"]
    batch.reset(SEEDS[::-1])
    mocap_pos = np.asarray(batch.d.mocap_pos)
    np.testing.assert_array_equal(mocap_pos[::-1], reset["mocap_pos"])
    np.testing.assert_array_equal(batch.qpos[::-1], reset["qpos"])
    assert not np.allclose(mocap_pos[0], mocap_pos[1])

"""The replay-render path and the batched scripted experts (envs/rlbench_like/mjx/replay.py, experts.py).

What each test guards:
- test_replayed_frames_equal_the_directly_collected_ones: a reach_target expert episode collected on the CPU
  env (collect.record_episode) and replayed from its recorded states gives the same observations, every
  camera's rgb, depth, intrinsics, extrinsics and the state vector, bit for bit.
- test_batched_experts_reproduce_the_cpu_expert: run_experts over a batch of 2 gives seed 0 the CPU env's
  expert episode bit for bit (actions, states, length, success) while the other environment runs its own
  seed and holds still after its episode ends. The batch here is `CPUBatch`, MJXBatch's interface
  on CPU MuJoCo (its layouts, model and step semantics), so the driver is tested without compiling MJX
  (two minutes on this CPU); MJX's physics against the CPU's is test_mjx.py's.
- test_replay_in_workers_gives_each_trajectory_its_frames: the worker-process path, in order (the episode and
  its first five steps).
- test_an_mjx_trajectory_replays_onto_its_layout: trajectories recorded on MJX (golden/mjx_reach_target.npz,
  2 seeds, 8 steps; re-record with the command below after a change to the task's layout) replay onto the
  seed's rebuilt scene (its welded props checked against MJX's mocap poses) and show the arm where MJX put it;
  and the experts driven through MJX took the actions they take on the CPU (states within MJX_TOLERANCE).
- test_a_trajectory_from_another_layout_is_refused, test_trajectory_files: loud failures, the file format.
- test_the_experts_command_tallies_the_variations_the_cpu_env_draws: MJXBatch.layout (what the experts'
  command reads each seed's variation from) draws the CPU env's variation for every seed of either
  split, and solved_by_variation counts them in index order.

    python -m polyact.envs.rlbench_like.mjx.experts --task reach_target --seeds 2 --max-steps 8 \\
        --out tests/envs/golden/mjx_reach_target.npz
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mujoco
import numpy as np
import pytest

from polyact.collect import record_episode
from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like import TASKS
from polyact.envs.rlbench_like.arm import STATE_NAMES, Arm
from polyact.envs.rlbench_like.env import SETTLE_STEPS, RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.mjx.batch import MJXBatch
from polyact.envs.rlbench_like.mjx.experts import run_experts, solved_by_variation
from polyact.envs.rlbench_like.mjx.replay import ReplayEnv, replay_trajectories
from polyact.envs.rlbench_like.mjx.trajectory import (
    StateTrajectory,
    load_trajectories,
    prop_poses,
    save_trajectories,
)
from polyact.envs.rlbench_like.scene import ARM_JOINTS
from polyact.envs.rlbench_like.sim import Sim
from polyact.errors import ConfigError

TASK = "reach_target"
SEEDS = (0, 1)
CFG = EnvConfig(tasks="RLB-all", cameras=["front", "wrist"], height=32, width=32)
GOLDEN = Path(__file__).parent / "golden" / "mjx_reach_target.npz"
MJX_TOLERANCE = 1e-6  # qpos of the MJX expert steps against the CPU's (5e-12 when recorded; test_mjx.py: 1e-3)


class CPUBatch:
    """MJXBatch's reset, step and snapshot on CPU MuJoCo: its layouts (MJXBatch.layout, no compile) and its
    model (welded props as mocap bodies), one MjData and CPU Arm per environment, settled as the CPU env."""

    def __init__(self, task):
        self._layouts = MJXBatch(task)
        self.task, self.model = task, self._layouts.model

    def reset(self, seeds, options=None):
        self.envs, instructions = [], []
        for seed, opts in zip(seeds, options or [{}] * len(seeds), strict=True):
            _, instruction, state = self._layouts.layout(int(seed), dict(opts))
            data = mujoco.MjData(self.model)
            for field, value in state.items():
                getattr(data, field)[:] = value
            mujoco.mj_forward(self.model, data)
            for _ in range(SETTLE_STEPS):
                mujoco.mj_step(self.model, data)
            self.envs.append((data, Arm(self.model, data, "default"), Sim(self.model, data)))
            instructions.append(instruction)
        return instructions

    def step(self, actions):
        for (_, arm, _), action in zip(self.envs, actions, strict=True):
            arm.step(action)
        return np.array([self.task.success(sim) for _, _, sim in self.envs])

    def snapshot(self):
        fields = ("qpos", "qvel", "mocap_pos", "mocap_quat", "xpos", "xmat", "site_xpos", "site_xmat")
        snap = {f: np.stack([getattr(data, f) for data, _, _ in self.envs]) for f in fields}
        return snap | {
            f: np.stack([getattr(arm, f) for _, arm, _ in self.envs]) for f in ("q_cmd", "target_pos", "target_quat")
        }


@pytest.fixture(scope="module")
def direct(state_recording_env):
    """The CPU expert's reach_target episode of seed 0, collected directly, and its recorded states."""
    env = state_recording_env(TASKS[TASK](), CFG)
    try:
        episode = record_episode(env, ScriptedExpert(env), seed=SEEDS[0])
        props, poses = prop_poses(env.model, env.data)
        trajectory = StateTrajectory(
            task=TASK,
            seed=SEEDS[0],
            options={},
            instruction=episode.instruction,
            qpos=np.array([s[0] for s in env.states]),
            qvel=np.array([s[1] for s in env.states]),
            actions=episode.actions,
            successes=episode.successes,
            props=props,
            prop_poses=poses,
        )
    finally:
        env.close()
    return episode, trajectory


@pytest.fixture(scope="module")
def replay_env():
    env = ReplayEnv(TASKS[TASK](), CFG)
    yield env
    env.close()


@pytest.fixture(scope="module")
def batched():
    return run_experts(CPUBatch(TASKS[TASK]()), SEEDS)


def assert_same_observations(expected, replayed):
    assert expected.keys() == replayed.keys()
    for key in expected:
        np.testing.assert_array_equal(replayed[key], expected[key], err_msg=key)


def test_replayed_frames_equal_the_directly_collected_ones(direct, replay_env):
    episode, trajectory = direct
    assert episode.success and len(episode.actions) > 10
    assert_same_observations(episode.observations, replay_env.replay(trajectory))


def test_batched_experts_reproduce_the_cpu_expert(direct, batched):
    episode, trajectory = direct
    assert batched.success.tolist() == [True, True]
    ours = batched.trajectories[0]
    assert (ours.seed, ours.instruction, ours.options) == (SEEDS[0], episode.instruction, {"variation_split": "train"})
    np.testing.assert_array_equal(ours.actions, episode.actions)
    np.testing.assert_array_equal(ours.successes, episode.successes)
    np.testing.assert_array_equal(ours.qpos, trajectory.qpos)
    np.testing.assert_array_equal(ours.qvel, trajectory.qvel)
    # the second environment ran its own seed's episode, and held still once it had ended
    other = batched.trajectories[1]
    assert other.seed == SEEDS[1] and other.success and other.instruction != ours.instruction
    assert not np.allclose(other.prop_poses, ours.prop_poses)


def test_replay_in_workers_gives_each_trajectory_its_frames(direct):
    episode, trajectory = direct
    steps = 5
    start = replace(
        trajectory,
        qpos=trajectory.qpos[: steps + 1],
        qvel=trajectory.qvel[: steps + 1],
        actions=trajectory.actions[:steps],
        successes=trajectory.successes[:steps],
    )
    whole, first = replay_trajectories([trajectory, start], CFG, workers=2)
    assert_same_observations(episode.observations, whole)
    assert_same_observations({k: v[:steps] for k, v in episode.observations.items()}, first)


def test_an_mjx_trajectory_replays_onto_its_layout(replay_env, batched):
    trajectories = load_trajectories(GOLDEN)
    assert [(t.task, t.seed) for t in trajectories] == [(TASK, s) for s in SEEDS]
    for mjx_run, cpu_run in zip(trajectories, batched.trajectories, strict=True):
        steps = len(mjx_run.actions)
        np.testing.assert_array_equal(mjx_run.actions, cpu_run.actions[:steps])
        np.testing.assert_allclose(mjx_run.qpos, cpu_run.qpos[: steps + 1], rtol=0, atol=MJX_TOLERANCE)
    joints = [replay_env.model.joint(j).qposadr[0] for j in ARM_JOINTS]
    tcp = slice(STATE_NAMES.index("ee_x"), STATE_NAMES.index("ee_z") + 1)
    for trajectory in trajectories:
        obs = replay_env.replay(trajectory)  # raises if the seed's scene is not the one MJX simulated
        steps = len(trajectory.actions)
        assert obs["rgb/wrist"].shape == (steps, 32, 32, 3) and obs["depth/front"].shape == (steps, 32, 32)
        first = STATE_NAMES.index("joint_1")
        np.testing.assert_array_equal(
            obs["state"][:, first : first + 7], trajectory.qpos[:-1, joints].astype(np.float32)
        )
        moved = np.linalg.norm(obs["state"][-1, tcp] - obs["state"][0, tcp])
        assert moved > 0.05, f"the expert's first move should carry the tcp, it moved {moved:.3f} m"
        camera_moved = np.linalg.norm(obs["extrinsics/wrist"][-1, :3, 3] - obs["extrinsics/wrist"][0, :3, 3])
        assert camera_moved > 0.05
        assert (obs["rgb/wrist"][-1] != obs["rgb/wrist"][0]).any()


def test_a_trajectory_from_another_layout_is_refused(direct, replay_env):
    _, trajectory = direct
    with pytest.raises(ConfigError, match="another layout"):
        replay_env.replay(replace(trajectory, seed=SEEDS[1]))
    with pytest.raises(ConfigError, match="cannot replay"):
        replay_env.replay(replace(trajectory, task="pick_and_lift"))


def test_trajectory_files(direct, tmp_path):
    _, trajectory = direct
    save_trajectories(tmp_path / "t.npz", [trajectory, trajectory])
    loaded = load_trajectories(tmp_path / "t.npz")
    assert len(loaded) == 2 and loaded[1].props == trajectory.props
    for field in ("qpos", "qvel", "actions", "successes", "prop_poses"):
        np.testing.assert_array_equal(getattr(loaded[1], field), getattr(trajectory, field))
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ConfigError, match="not a state trajectory file"):
        load_trajectories(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="qvel has"):
        replace(trajectory, qvel=trajectory.qvel[:-1])


def test_the_experts_command_tallies_the_variations_the_cpu_env_draws():
    task = "slide_block_to_color_target"
    layouts = MJXBatch(TASKS[task]())
    env = RLBenchLikeEnv(TASKS[task](), EnvConfig(tasks=task, cameras=["front"], height=8, width=8))
    try:
        for split in ("train", "test"):
            options = {"variation_split": split}
            drawn = [layouts.layout(seed, options)[0].index for seed in range(12)]
            for seed, variation in enumerate(drawn):
                env.reset(seed=seed, options=options)
                assert env.variation.index == variation, (split, seed)
            assert {env.variations[v].split for v in drawn} == {split}
    finally:
        env.close()
    assert solved_by_variation([3, 0, 3, 3], [True, False, False, True]) == {0: (0, 1), 3: (2, 3)}
    assert list(solved_by_variation([5, 1, 2], [True] * 3)) == [1, 2, 5]

"""`polyact collect trajectories=PATH.npz`: a dataset from state trajectories (the MJX experts'), rendered by
the CPU env in worker processes and committed by collect.py's own writing path (issue #17).

What each test guards:
- test_trajectories_give_the_dataset_a_direct_collection_writes: the golden MJX recording
  (tests/envs/golden/mjx_reach_target.npz: MJX experts, reach_target seeds 0 and 1, 8 steps) collected into a
  dataset, in two runs (one episode, then resumed to two), equals `polyact collect` of the same seeds with the
  CPU experts (env.max_episode_steps=8 ends them where the recording does): the manifest (features, env spec,
  tasks, storage, collection metadata, each episode's record with its keyframes and finger contacts), every
  rgb and depth frame, the actions, rewards and successes bit for bit; the state vector, the wrist camera's
  extrinsics and the dataset's exact statistics of them within PHYSICS_TOLERANCE, because MJX's physics is not the
  CPU's (qpos within 5e-12 over these steps, tests/envs/test_mjx_replay.py): entries that are zero up to
  rounding (the tcp's orientation, the settled joints) are ~1e-22 on the CPU and up to 1.6e-14 on MJX.
- test_a_replayed_grasp_has_the_recorded_annotations: what a worker makes of a trajectory is the episode a
  worker records, also where the fingers touch a prop (pick_and_lift; reach_target's touch nothing): the
  finger contacts, keyframes and sub-goals the suite annotates, besides every observation (a CPU expert
  episode's states: bit for bit).
- test_trajectories_that_cannot_give_that_dataset_are_refused: a missing file, trajectories of a task that
  env.tasks does not name, trajectories shorter than the env's step limit without success, a camera the suite
  lacks: one line saying what is wrong (exit code 2), before any dataset is created.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from polyact.cli import main
from polyact.collect import CollectConfig, _annotated, _replay_in_worker, collect, record_episode
from polyact.data import EpisodeDataset
from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like import TASKS
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.mjx import replay
from polyact.envs.rlbench_like.mjx.trajectory import StateTrajectory

GOLDEN = Path(__file__).parents[1] / "envs" / "golden" / "mjx_reach_target.npz"
ENV = EnvConfig(tasks="reach_target", cameras=["front", "wrist"], height=32, width=32, max_episode_steps=8)
DIRECT = CollectConfig(env=ENV, episodes_per_task=2, successes_only=False, workers=1, progress=False)
PHYSICS_TOLERANCE = 5e-14  # state (m, rad, quaternion) and extrinsics of MJX's states against the CPU's
NEAR = ("state", "extrinsics/wrist")
EXACT_STATS = ("mean", "std", "min", "max", "count")  # q01/q99: KLL sketches, approximate, merged at random


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The dataset collected directly, and the one collected from the golden trajectories, in two runs."""
    root = tmp_path_factory.mktemp("collect_trajectories")
    collect(replace(DIRECT, out=str(root / "direct")))
    replayed = replace(DIRECT, out=str(root / "replayed"), trajectories=str(GOLDEN))
    collect(replace(replayed, episodes_per_task=1))
    report = collect(replayed)
    assert [(t.kept, t.attempts) for t in report.tasks] == [(2, 2)]
    return EpisodeDataset(root / "direct"), EpisodeDataset(root / "replayed")


@pytest.mark.slow
def test_trajectories_give_the_dataset_a_direct_collection_writes(datasets):
    direct, replayed = datasets
    assert replayed.metadata == direct.metadata
    assert (replayed.features, replayed.action_feature, replayed.env_spec) == (
        direct.features,
        direct.action_feature,
        direct.env_spec,
    )
    assert (replayed.tasks, replayed.storage, replayed.fps) == (direct.tasks, direct.storage, direct.fps)
    assert [e.to_dict() for e in replayed.episodes] == [e.to_dict() for e in direct.episodes]
    assert [(e.seed, e.length) for e in direct.episodes] == [(0, 8), (1, 8)]
    assert all(e.extra["keyframes"] for e in direct.episodes)
    for index in range(len(direct)):
        want, got = direct.load_episode(index), replayed.load_episode(index)
        assert got.observations.keys() == want.observations.keys()
        for key, frames in want.observations.items():
            if key in NEAR:
                np.testing.assert_allclose(got.observations[key], frames, rtol=0, atol=PHYSICS_TOLERANCE, err_msg=key)
            else:
                np.testing.assert_array_equal(got.observations[key], frames, err_msg=key)
        for name in ("actions", "rewards", "successes"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    for key, stats in direct.stats.items():
        for name in EXACT_STATS:
            np.testing.assert_allclose(replayed.stats[key][name], stats[name], rtol=0, atol=PHYSICS_TOLERANCE)
    assert replayed.verify() == []


def test_a_replayed_grasp_has_the_recorded_annotations(state_recording_env):
    cfg = replace(ENV, tasks="pick_and_lift", cameras=["front"], height=16, width=16, max_episode_steps=0)
    env = state_recording_env(TASKS["pick_and_lift"](), cfg)
    try:
        want = _annotated(record_episode(env, ScriptedExpert(env), seed=0), env)
        trajectory = StateTrajectory(
            task="pick_and_lift",
            seed=0,
            options={"variation_split": "train"},
            instruction=want.instruction,
            qpos=np.array([q for q, _ in env.states]),
            qvel=np.array([v for _, v in env.states]),
            actions=want.actions,
            successes=want.successes,
        )
        got = _replay_in_worker(trajectory, cfg)
    finally:
        env.close()
        kept = replay._WORKER_ENVS.pop("pick_and_lift", None)  # the worker's env, built in this process
        if kept is not None:
            kept[1].close()
    assert want.success and any(want.extra["finger_contact"])
    assert got.extra == want.extra
    assert (got.task, got.seed, got.instruction, got.success) == (want.task, want.seed, want.instruction, True)
    assert got.observations.keys() == want.observations.keys()
    for key, frames in want.observations.items():
        np.testing.assert_array_equal(got.observations[key], frames, err_msg=key)
    for name in ("actions", "rewards", "successes"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["env.tasks=reach_target", "trajectories=missing.npz"], "missing.npz: no such file"),
        (["env.tasks=pick_and_lift", f"trajectories={GOLDEN}"], "holds trajectories of reach_target, which"),
        (["env.tasks=reach_target", f"trajectories={GOLDEN}"], "ends after 8 steps without success"),
        (["env.tasks=reach_target", "env.cameras=[corner]", f"trajectories={GOLDEN}"], "camera"),
    ],
)
def test_trajectories_that_cannot_give_that_dataset_are_refused(tmp_path, monkeypatch, capsys, args, says):
    monkeypatch.chdir(tmp_path)
    assert main(["collect", *args, "out=ds", "progress=false"]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()

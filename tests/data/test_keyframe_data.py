"""`polyact data keyframes`: a keyframe dataset from real rlbench_like demonstrations, its contract,
its labels, resuming, what it refuses, and that every head trains on its 7-D poses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from polyact.collect import CollectConfig, collect
from polyact.data import EpisodeDataset
from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like.keyframe_actions import keyframe_transitions
from polyact.errors import ConfigError, DatasetError
from polyact.keyframe_data import KeyframeDataConfig, convert, keyframe_episode, keyframe_writer

TASKS = "RLB12"


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> Path:
    """One real demonstration of each of two tasks (the collector also stores the keyframes)."""
    out = tmp_path_factory.mktemp("kf") / "dense"
    env = EnvConfig(tasks=TASKS, cameras=["front"], height=16, width=16)
    collect(CollectConfig(out=str(out), env=env, episodes_per_task=1, workers=1, progress=False))
    return out


@pytest.fixture(scope="module")
def keyed(dense: Path) -> Path:
    return convert(KeyframeDataConfig(src=str(dense), out=str(dense.parent / "keyed"), every_n=10))


def test_the_keyframe_dataset_has_the_keyframe_contract_and_labels(dense: Path, keyed: Path):
    src, out = EpisodeDataset(dense), EpisodeDataset(keyed)
    assert out.env_spec.action.names == ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
    assert out.env_spec.notes["action_mode"] == "keyframe" and out.env_spec.max_episode_steps == 25
    assert out.features["state"].shape == (16,) and len(out) == len(src)
    for i in range(len(src)):
        dense_ep, key_ep = src.load_episode(i), out.load_episode(i)
        kf = keyframe_transitions(
            dense_ep.observations["state"], dense_ep.actions, dense_ep.extra["keyframes"], every_n=10
        )
        assert key_ep.extra["dense_steps"] == kf.steps.tolist()
        assert np.array_equal(key_ep.actions, kf.actions)
        assert np.array_equal(key_ep.observations["rgb/front"], dense_ep.observations["rgb/front"][kf.steps])
        assert np.array_equal(key_ep.observations["state"][:, :15], dense_ep.observations["state"][kf.steps])
        assert key_ep.success and key_ep.successes[-1]  # the last keyframe is where the demo succeeded
        # each label is the tcp pose at its keyframe
        assert np.allclose(key_ep.actions[:, :3], dense_ep.observations["state"][kf.targets, :3])
        # and each sample's sub-goal the label of the first sub-goal keyframe after it (GravMAD), else the last
        goals = sorted(dense_ep.extra["subgoals"])
        for step, subgoal in zip(kf.steps, key_ep.observations["subgoal"], strict=True):
            goal = next((g for g in goals if g > step), goals[-1])
            assert np.array_equal(subgoal, kf.actions[kf.targets.tolist().index(goal)])
    assert out.features["subgoal"].shape == (7,)


def test_a_stopped_conversion_resumes_and_a_foreign_out_is_refused(dense: Path, keyed: Path, tmp_path: Path):
    """A conversion that stopped after its first episode (written here as convert writes it) is
    continued by the same command, ending equal to an uninterrupted one."""
    from polyact.envs.registry import suite

    source, full = EpisodeDataset(dense), EpisodeDataset(keyed)
    out = tmp_path / "keyed"
    rlb = suite("rlbench_like")
    with keyframe_writer(source, out, every_n=10) as writer:
        writer.add_episode(keyframe_episode(source.load_episode(0), rlb.keyframe_transitions, every_n=10))
    assert convert(KeyframeDataConfig(src=str(dense), out=str(out), every_n=10)) == out
    resumed = EpisodeDataset(out)
    assert len(resumed) == len(full) and resumed.num_steps == full.num_steps
    for i in range(len(full)):
        assert np.array_equal(resumed.load_episode(i).actions, full.load_episode(i).actions)
    with pytest.raises(DatasetError, match="every_n=0"):
        convert(KeyframeDataConfig(src=str(dense), out=str(out), every_n=0))


def test_what_the_conversion_refuses(dense: Path, keyed: Path, tmp_path: Path):
    with pytest.raises(DatasetError, match="already holds keyframe actions"):
        convert(KeyframeDataConfig(src=str(keyed), out=str(tmp_path / "again")))
    with pytest.raises(ConfigError, match="every_n"):
        KeyframeDataConfig(src=str(dense), out=str(tmp_path / "x"), every_n=-1)
    with pytest.raises(ConfigError, match="src=DENSE_DATASET"):
        KeyframeDataConfig(out=str(tmp_path / "x"))


def test_the_command_line(dense: Path, tmp_path: Path):
    out = tmp_path / "cli"
    run = subprocess.run(
        [sys.executable, "-m", "polyact.cli", "data", "keyframes", f"src={dense}", f"out={out}"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "keyframe transitions" in run.stdout and EpisodeDataset(out).num_steps > 0


@pytest.mark.parametrize("head", ["l1", "uniform_bins", "adaptive_grid", "diffusion", "flow"])
def test_every_head_trains_on_keyframe_poses(keyed: Path, head: str):
    """The 7-D pose through every head: a few optimiser steps lower the loss on the keyframe windows,
    and predictions are 7-D poses inside the action bounds."""
    from polyact.data import WindowDataset
    from polyact.policies import HeadConfig, PolicyConfig, build_policy

    ds = EpisodeDataset(keyed)
    windows = WindowDataset(ds, history=1, chunk=1, keys=["rgb/front", "state"])
    batch = torch.utils.data.default_collate([windows[i] for i in range(0, len(windows), max(1, len(windows) // 16))])
    cfg = PolicyConfig(size="tiny", chunk=1, replan_every=1, head=HeadConfig(name=head))
    all_actions = np.concatenate([ds.load_episode(i).actions for i in range(len(ds))])
    policy = build_policy(
        cfg, ds.env_spec, ds.stats, instructions=sum(ds.tasks.values(), []), action_samples=all_actions
    )
    if head == "adaptive_grid":  # the rotation grid is fitted to the poses' roll, pitch and yaw
        sigmas = policy.head.grid.gaussians[3:, 1]
        assert torch.all(sigmas > 0) and not torch.allclose(sigmas, sigmas[0])
    optimiser = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    torch.manual_seed(0)
    losses = []
    for _ in range(8):
        loss, _ = policy.compute_loss(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and min(losses[-3:]) < losses[0]
    policy.eval()
    actions = policy.predict_chunk(batch)
    assert actions.shape == (len(batch["action"]), 1, 7) and np.isfinite(actions).all()


def test_a_subgoal_predictor_and_a_policy_conditioned_on_it_train_on_the_sub_goals(keyed: Path, tmp_path: Path):
    """target=subgoal learns the `subgoal` feature (its search box is the sub-goals' range); a GravMap
    policy trained with that predictor carries it, and acts in the keyframe env, which gives no sub-goal."""
    from polyact.config import load_config
    from polyact.envs import make_env
    from polyact.policies import VLAPolicy
    from polyact.policies.vla import TRANSLATION_MARGIN
    from polyact.train import TrainConfig, train

    common = [
        f"dataset={keyed}",
        "policy.size=tiny",
        "policy.chunk=1",
        "policy.replan_every=1",
        "policy.vision.depth=true",
        "batch_size=4",
        "steps=2",
        "num_workers=0",
        "progress=false",
    ]
    extra = ["policy.translation=heatmap", "target=subgoal"]
    predictor_dir = train(load_config(TrainConfig, [*common, f"out={tmp_path / 'predictor'}", *extra]))
    predictor = VLAPolicy.from_pretrained(predictor_dir)
    subgoals = EpisodeDataset(keyed).stats["subgoal"]
    expected = np.stack([subgoals["min"][:3] - TRANSLATION_MARGIN, subgoals["max"][:3] + TRANSLATION_MARGIN])
    np.testing.assert_allclose(predictor.translation_box.numpy(), expected, atol=1e-6)

    extra = ["policy.subgoal_conditioning=gravmap", f"subgoal_predictor={predictor_dir}"]
    policy_dir = train(load_config(TrainConfig, [*common, f"out={tmp_path / 'policy'}", *extra]))
    policy = VLAPolicy.from_pretrained(policy_dir)
    assert policy.subgoal_predictor is not None
    cfg = EnvConfig(tasks="close_drawer", cameras=["front"], height=16, width=16, action_mode="keyframe")
    env = make_env("close_drawer", cfg)
    try:
        obs, _ = env.reset(seed=0)
        action = policy.predict_chunk(obs)[0, 0]
        assert action.shape == (7,) and np.isfinite(action).all()
        env.step(action)
    finally:
        env.close()
    with pytest.raises(ConfigError, match="subgoal_conditioning=gravmap"):
        load_config(TrainConfig, [*common, "out=x", f"subgoal_predictor={predictor_dir}"])

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
from polyact.data import DatasetWriter, EpisodeDataset
from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like.keyframe_actions import keyframe_transitions
from polyact.errors import ConfigError, DatasetError
from polyact.keyframe_data import KeyframeDataConfig, convert, keyframe_episode

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


def test_a_stopped_conversion_resumes_and_a_foreign_out_is_refused(dense: Path, keyed: Path, tmp_path: Path):
    """A conversion that stopped after its first episode (written here as convert writes it) is
    continued by the same command, ending equal to an uninterrupted one."""
    from polyact.envs.registry import suite

    source, full = EpisodeDataset(dense), EpisodeDataset(keyed)
    out = tmp_path / "keyed"
    rlb = suite("rlbench_like")
    with DatasetWriter.for_spec(
        out, rlb.keyframe_spec(source.env_spec), tasks=source.tasks, metadata=dict(full.metadata)
    ) as writer:
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

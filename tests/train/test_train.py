"""Training on a real Meta-World dataset: losses fall, checkpoints load, kills resume exactly,
DDP and FSDP over gloo equal a single process, and divergence stops with the step named."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from polyact.config import load_config
from polyact.data import EpisodeDataset
from polyact.data.windows import WindowDataset, collate_windows
from polyact.envs import EVAL_SEED_BASE, EnvConfig, make_env
from polyact.errors import ConfigError
from polyact.faults import ENV as FAULT_ENV
from polyact.policies import ChunkRunner, VLAPolicy
from polyact.train import TrainConfig, TrainingDivergedError, train
from polyact.train.checkpoint import latest_checkpoint
from polyact.train.loop import warmup_cosine

from .conftest import assert_torchrun_step_equals, losses


def overrides(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"dataset={dataset}",
        f"out={out}",
        "policy.size=tiny",
        "batch_size=8",
        "num_workers=0",
        "progress=false",
        "log_every=1",
        "optim.warmup_steps=2",
        *extra,
    ]


def test_warmup_then_cosine():
    assert warmup_cosine(0, 4, 100, 0.1) == pytest.approx(0.25)
    assert warmup_cosine(3, 4, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(52, 4, 100, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(100, 4, 100, 0.1) == pytest.approx(0.1)
    # a time budget further spent than the steps sets the pace, and a spent one ends at the floor
    assert warmup_cosine(10, 4, 100, 0.1, time_spent=0.5) == pytest.approx(0.55)
    assert warmup_cosine(52, 4, 100, 0.1, time_spent=0.1) == pytest.approx(0.55)
    assert warmup_cosine(10, 4, 100, 0.1, time_spent=3.0) == pytest.approx(0.1)


def test_annealing_over_minutes_needs_a_time_budget(tmp_path):
    with pytest.raises(ConfigError, match="max_minutes > 0"):
        load_config(TrainConfig, overrides(tmp_path, tmp_path, "optim.anneal_over=minutes"))
    with pytest.raises(ConfigError, match="minutes, steps"):
        load_config(TrainConfig, overrides(tmp_path, tmp_path, "optim.anneal_over=hours", "max_minutes=5"))


@pytest.mark.parametrize("anneal_over", ["steps", "minutes"])
def test_a_resumed_run_keeps_its_time_schedule(metaworld_dataset, tmp_path, anneal_over):
    """A budget of a microsecond is spent by the first log step: the run stops there, and a run resuming
    it on the minutes schedule starts at the decayed learning rate, the steps schedule where its step is."""
    args = ["steps=40", "ema_decay=0", "log_every=2", "optim.warmup_steps=0", "optim.lr=1e-3"]
    args += ["max_minutes=1e-8", f"optim.anneal_over={anneal_over}"]
    train(load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, *args)))
    first = torch.load(latest_checkpoint(tmp_path) / "trainer.pt", weights_only=True)
    assert first["step"] == 2 and first["elapsed_s"] > 0
    train(load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, *args)))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    resumed_lr = records[-1]["lr"]
    if anneal_over == "minutes":
        assert resumed_lr == pytest.approx(1e-3 * 0.1)  # min_lr_ratio: the carried time spent it all
        later = torch.load(latest_checkpoint(tmp_path) / "trainer.pt", weights_only=True)
        assert later["elapsed_s"] > first["elapsed_s"]
    else:
        assert resumed_lr == pytest.approx(1e-3 * warmup_cosine(4, 0, 40, 0.1))


@pytest.mark.slow
@pytest.mark.parametrize("head", ["l1", "uniform_bins", "adaptive_grid", "diffusion", "flow"])
def test_every_head_learns_on_metaworld_demonstrations(metaworld_dataset, tmp_path, head):
    cfg = load_config(
        TrainConfig,
        overrides(
            metaworld_dataset,
            tmp_path,
            f"policy.head.name={head}",
            "steps=40",
            "optim.lr=1e-3",
            "ema_decay=0",
            "policy.head.grid_translation=[4,8,4]",
            "policy.head.grid_rotation=[4,4,4]",
        ),
    )
    final = train(cfg)
    curve = losses(tmp_path)
    first, last = np.mean([curve[s] for s in range(1, 6)]), np.mean([curve[s] for s in range(36, 41)])
    assert last < 0.9 * first, f"{head}: loss went from {first:.4f} to {last:.4f}"
    policy = VLAPolicy.from_pretrained(final)
    assert policy.config.head.name == head
    assert policy.env_spec == EpisodeDataset(metaworld_dataset).env_spec  # the checkpoint describes its env
    # and it acts in closed loop: observations from the simulator in, chunks executed step by step
    env = make_env("reach-v3", EnvConfig(tasks="reach-v3", height=32, width=32))
    runner = ChunkRunner(policy, 1)
    try:
        obs, _ = env.reset(seed=EVAL_SEED_BASE)
        start = obs["state"][:3].copy()
        for _ in range(3 * policy.config.replan_every):
            action = runner.act([obs])[0]
            assert np.all(np.isfinite(action)) and action.shape == (4,)
            obs, *_ = env.step(action)
    finally:
        env.close()
    assert not np.allclose(obs["state"][:3], start)  # the arm moved under the policy's actions


@pytest.mark.slow
def test_saved_policy_reproduces_the_trained_model(metaworld_dataset, tmp_path):
    cfg = load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, "steps=2", "ema_decay=0"))
    final = train(cfg)
    weights = load_file(str(latest_checkpoint(tmp_path) / "weights.safetensors"))
    policy = VLAPolicy.from_pretrained(final)
    assert all(torch.equal(weights[k], v) for k, v in policy.state_dict().items())
    again = VLAPolicy.from_pretrained(final)
    windows = WindowDataset(metaworld_dataset, history=1, chunk=policy.config.chunk)
    batch = collate_windows([windows[i] for i in (0, 7, 30)])
    assert np.array_equal(policy.predict_chunk(batch), again.predict_chunk(batch))


def _train_cli(args: list[str], log: Path, fault: str | None = None) -> tuple[int, str]:
    """`polyact train`, killed at `fault` if given (polyact.faults); its exit status and output.

    Whatever it left running (a DataLoader worker outlives a trainer killed by SIGKILL) is killed with it."""
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV} | ({FAULT_ENV: fault} if fault else {})
    command = [sys.executable, "-m", "polyact.cli", "train", *args]
    with open(log, "w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        status = child.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    return status, log.read_text()


def resumable(dataset: Path, out: Path) -> list[str]:
    return overrides(dataset, out, "steps=12", "checkpoint_every=4", "num_workers=1")


@pytest.fixture(scope="module")
def uninterrupted_losses(metaworld_dataset, tmp_path_factory) -> dict[int, float]:
    out = tmp_path_factory.mktemp("uninterrupted")
    status, output = _train_cli(resumable(metaworld_dataset, out / "run"), out / "train.log")
    assert status == 0, output
    return losses(out / "run")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "logged", "resumes_at", "torn"),
    [
        ("train.step_done:6", 6, 4, []),  # between checkpoints: steps 5 and 6 are redone
        ("train.checkpoint_before_rename:2", 8, 4, [".step_00000008.tmp"]),  # step 8's, written, not in place
        ("train.checkpoint_saved:2", 8, 8, []),  # step 8's checkpoint is in place and named
    ],
)
def test_killed_run_resumes_with_the_same_losses(
    metaworld_dataset, uninterrupted_losses, tmp_path, fault, logged, resumes_at, torn
):
    out = tmp_path / "run"
    status, output = _train_cli(resumable(metaworld_dataset, out), tmp_path / "killed.log", fault)
    assert status == -signal.SIGKILL, output
    assert latest_checkpoint(out).name == f"step_{resumes_at:08d}"
    assert [p.name for p in (out / "checkpoints").glob(".*")] == torn
    assert losses(out) == pytest.approx({s: uninterrupted_losses[s] for s in range(1, logged + 1)}, rel=1e-6, abs=1e-7)

    status, output = _train_cli(resumable(metaworld_dataset, out), tmp_path / "resumed.log")  # the same command
    assert status == 0, output
    assert f"at step {resumes_at}" in output
    assert losses(out) == pytest.approx(uninterrupted_losses, rel=1e-6, abs=1e-7)  # the redone steps' lines last
    assert latest_checkpoint(out).name == "step_00000012" and not list((out / "checkpoints").glob(".*"))


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_one_distributed_step_equals_one_single_process_step(metaworld_dataset, tmp_path, sharding):
    # L1 head, no augmentation, no dropout: the step is a deterministic function of the batch
    common = ["steps=1", "ema_decay=0", "policy.vision.random_shift=0", "batch_size=8"]
    single = tmp_path / "single"
    train(load_config(TrainConfig, overrides(metaworld_dataset, single, *common)))
    multi = tmp_path / sharding
    assert_torchrun_step_equals(single, multi, overrides(metaworld_dataset, multi, *common, f"sharding={sharding}"))


@pytest.mark.slow
def test_divergence_stops_naming_the_step_and_keeps_the_last_checkpoint(metaworld_dataset, tmp_path):
    cfg = load_config(
        TrainConfig,
        overrides(
            metaworld_dataset,
            tmp_path,
            "steps=400",
            "checkpoint_every=1",
            "optim.lr=1e6",
            "optim.grad_clip=0",
            "optim.warmup_steps=0",
            "ema_decay=0",
        ),
    )
    with pytest.raises(TrainingDivergedError, match=r"diverged at step \d+") as err:
        train(cfg)
    last = latest_checkpoint(tmp_path)
    assert last is not None and str(last) in str(err.value)
    VLAPolicy.from_pretrained(last / "policy")  # still loads


def test_bad_training_config_is_refused(metaworld_dataset, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.learning_rate'.*closest first: .*\blr\b"):
        load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, "optim.learning_rate=1"))
    with pytest.raises(ConfigError, match="closest first: diffusion"):
        load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, "policy.head.name=difusion"))
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, "batch_size=0"))
    with pytest.raises(ConfigError, match="data_open_files >= 1"):
        load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, "data_open_files=0"))


def test_how_the_data_is_read_is_not_part_of_a_runs_identity():
    """Holding the dataset in memory or keeping more files open changes speed, not the run: a run
    resumed with other data settings continues the same optimisation."""
    base = TrainConfig(dataset="d", out="o")
    other = TrainConfig(dataset="d", out="o", data_open_files=4096, data_memory_mb=0, num_workers=0)
    assert base.resume_identity() == other.resume_identity()


@pytest.mark.slow
def test_resuming_with_other_settings_is_refused(metaworld_dataset, tmp_path):
    train(load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, "steps=1")))
    with pytest.raises(ConfigError, match="other settings.*optim"):
        train(load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, "steps=2", "optim.lr=1e-2")))


def test_future_frame_prediction_trains_on_the_windows_ahead(metaworld_dataset, tmp_path):
    """policy.future_frames adds the frames ahead to the windows and GR-1's loss to the logged metrics."""
    out = tmp_path / "future"
    train(load_config(TrainConfig, overrides(metaworld_dataset, out, "steps=2", "policy.future_frames=3")))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["head/future_mse"] > 0 for r in records) and len(records) == 2

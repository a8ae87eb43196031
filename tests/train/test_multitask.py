"""Per-task gradient methods: PCGrad and MGDA on hand-made gradients with known answers, SAM's perturbation,
the step on a real policy against separately computed task gradients, and under DDP over gloo the same
two steps as one process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from polyact.config import load_config
from polyact.data import EpisodeDataset
from polyact.data.windows import WindowDataset, collate_windows
from polyact.errors import ConfigError
from polyact.policies import PolicyConfig, build_policy
from polyact.train import TrainConfig, train
from polyact.train.checkpoint import latest_checkpoint
from polyact.train.distributed import Dist
from polyact.train.multitask import TaskGradients, mgda, min_norm_weights, pcgrad, sam_perturbation

CPU = Dist(0, 1, 0, torch.device("cpu"))


def test_pcgrad_projects_conflicting_gradients_only():
    grads = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # dot -1: a conflict
    # g1 - (g1.g2 / |g2|^2) g2 = (0.5, 0.5); g2 - (g2.g1 / |g1|^2) g1 = (0, 1)
    torch.testing.assert_close(pcgrad(grads), torch.tensor([0.5, 1.5]))
    agreeing = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(pcgrad(agreeing), agreeing.sum(0))


def test_mgda_finds_the_minimum_norm_point_of_the_hull():
    torch.testing.assert_close(min_norm_weights(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])), torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(min_norm_weights(torch.tensor([[1.0, 0.0], [3.0, 0.0]])), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(min_norm_weights(torch.tensor([[1.0, 1.0], [1.0, -1.0]])), torch.tensor([0.5, 0.5]))
    # three tasks: the hull of (2, 0), (0, 2), (2, 2) is closest to the origin at (1, 1); scaled by 3
    torch.testing.assert_close(mgda(torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])), torch.tensor([3.0, 3.0]))


def test_sam_moves_rho_along_the_gradient():
    eps = sam_perturbation(torch.tensor([3.0, 4.0]), rho=0.05)
    torch.testing.assert_close(eps, torch.tensor([0.03, 0.04]))


def two_task_batch(metaworld_dataset) -> dict:
    ds = EpisodeDataset(metaworld_dataset)
    windows = WindowDataset(ds, history=1, chunk=2, keys=["rgb/corner", "state", "goal"])
    starts = [0, ds.episodes[0].length, sum(e.length for e in ds.episodes[:3])]  # episodes of both tasks
    return collate_windows(windows.__getitems__([s + k for s in starts for k in range(3)]))


def tiny(metaworld_dataset):
    ds = EpisodeDataset(metaworld_dataset)
    torch.manual_seed(0)
    cfg = PolicyConfig(size="tiny", chunk=2, replan_every=1, vision={"random_shift": 0})
    return build_policy(cfg, ds.env_spec, ds.stats, sum(ds.tasks.values(), []))


def task_gradient(policy, batch, task: int) -> torch.Tensor:
    rows = torch.nonzero(batch["task_index"] == task).flatten()
    sub = {k: (v[rows] if torch.is_tensor(v) else [v[i] for i in rows.tolist()]) for k, v in batch.items()}
    loss, _ = policy.compute_loss(sub)
    grads = torch.autograd.grad(loss, list(policy.parameters()), allow_unused=True)
    pairs = zip(grads, policy.parameters(), strict=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in pairs])


def test_the_step_combines_the_tasks_own_gradients(metaworld_dataset):
    policy, batch = tiny(metaworld_dataset), two_task_batch(metaworld_dataset)
    assert sorted(set(batch["task_index"].tolist())) == [0, 1]
    expected = mgda(torch.stack([task_gradient(policy, batch, t) for t in (0, 1)]))
    before = [p.detach().clone() for p in policy.parameters()]
    loss, metrics = TaskGradients(policy, "mgda", CPU).step(batch, None)
    got = torch.cat([p.grad.flatten() for p in policy.parameters()])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert torch.isfinite(loss) and "task_gradient_conflicts" in metrics
    TaskGradients(policy, "flat_pcgrad", CPU, rho=0.05).step(batch, None)
    for p, b in zip(policy.parameters(), before, strict=True):  # SAM's excursion is undone
        torch.testing.assert_close(p.detach(), b)
    with pytest.raises(ConfigError, match="unknown multitask method 'cagrad'"):
        TaskGradients(policy, "cagrad", CPU)
    with pytest.raises(ConfigError, match="use sharding=ddp"):
        TaskGradients(policy, "pcgrad", Dist(0, 2, 0, torch.device("cpu")), sharding="fsdp")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pcgrad", "mgda", "flat_pcgrad", "flat_mgda"])
def test_two_distributed_steps_equal_one_process(method, metaworld_dataset, tmp_path):
    """Every method under DDP: per-task gradients averaged over ranks, SAM's excursion for the flat ones,
    and PCGrad's random order, which must be the same on both ranks (MGDA's combination has no randomness)."""
    common = [f"dataset={metaworld_dataset}", "policy.size=tiny", "batch_size=8", "num_workers=0", "progress=false"]
    common += ["steps=2", "ema_decay=0", "policy.vision.random_shift=0", "log_every=1", f"multitask={method}"]
    train(load_config(TrainConfig, [*common, f"out={tmp_path / 'single'}"]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "polyact.cli"]
    done = subprocess.run(
        [*cmd, "train", *common, f"out={tmp_path / 'ddp'}"],
        capture_output=True,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    a = load_file(str(latest_checkpoint(tmp_path / "single") / "weights.safetensors"))
    b = load_file(str(latest_checkpoint(tmp_path / "ddp") / "weights.safetensors"))
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key

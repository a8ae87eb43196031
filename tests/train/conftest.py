"""A small real Meta-World dataset (scripted demonstrations at 32x32) for the training tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polyact.collect import record_episode
from polyact.data import DatasetWriter
from polyact.envs.config import EnvConfig
from polyact.envs.registry import make_env, make_expert
from polyact.train.checkpoint import latest_checkpoint

TASKS = ("reach-v3", "drawer-close-v3")


@pytest.fixture(scope="session")
def metaworld_dataset(tmp_path_factory):
    """Two tasks x two demonstrations, recorded in this process (no workers) into a real dataset."""
    path = tmp_path_factory.mktemp("data") / "demos"
    writer = None
    for task in TASKS:
        env = make_env(task, EnvConfig(tasks=task, height=32, width=32))
        expert = make_expert(env)
        try:
            if writer is None:
                spec = replace(env.contract, tasks=TASKS)
                writer = DatasetWriter.for_spec(path, spec)
            for seed in (0, 1):
                writer.add_episode(record_episode(env, expert, seed))
        finally:
            env.close()
    writer.close()
    return path


def losses(out: Path) -> dict[int, float]:
    """Step -> loss of a finished run's metrics.jsonl."""
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


def assert_torchrun_step_equals(single: Path, multi: Path, train_args: list[str]) -> None:
    """Run `polyact train train_args` (out=`multi`) over two gloo processes and compare it with `single`'s
    finished one-process run: the same weights and the same first loss."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "polyact.cli", "train", *train_args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    a = load_file(str(latest_checkpoint(single) / "weights.safetensors"))
    b = load_file(str(latest_checkpoint(multi) / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key
    assert losses(single)[1] == pytest.approx(losses(multi)[1], rel=1e-5)

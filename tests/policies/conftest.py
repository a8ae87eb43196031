"""Synthetic environments, statistics and loader batches for the policy tests (no simulator needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from polyact.contract import ActionSpec, CameraSpec, EnvSpec
from polyact.policies import HeadConfig, PolicyConfig, build_policy

INSTRUCTIONS = ["pick up the red block", "open the drawer", "push the button"]


def make_spec(
    action_dim: int = 4, cameras: tuple[str, ...] = ("corner",), size: int = 32, goal: bool = True
) -> EnvSpec:
    names = (
        ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
        if action_dim == 7
        else tuple(f"a{i}" for i in range(action_dim))
    )
    return EnvSpec(
        suite="synthetic",
        tasks=("t0", "t1", "t2"),
        cameras=tuple(CameraSpec(c, size, size) for c in cameras),
        state_names=("ee_x", "ee_y", "ee_z", "grip"),
        goal_names=("goal_x", "goal_y", "goal_z") if goal else (),
        action=ActionSpec(names, (-1.0,) * action_dim, (1.0,) * action_dim, "synthetic"),
        control_hz=10.0,
        max_episode_steps=50,
    )


def make_stats(spec: EnvSpec) -> dict[str, dict[str, Any]]:
    def feat(dim: int, scale: float = 1.0, offset: float = 0.0) -> dict[str, Any]:
        return {
            "mean": np.full(dim, offset, np.float32),
            "std": np.full(dim, 0.5 * scale, np.float32),
            "min": np.full(dim, offset - scale, np.float32),
            "max": np.full(dim, offset + scale, np.float32),
            "q01": np.full(dim, offset - 0.9 * scale, np.float32),
            "q99": np.full(dim, offset + 0.9 * scale, np.float32),
            "count": 1000,
        }

    stats = {"action": feat(spec.action.dim), "state": feat(len(spec.state_names)), "goal": feat(len(spec.goal_names))}
    for cam in spec.camera_names:
        stats[f"rgb/{cam}"] = feat(3, 60.0, 120.0)
        stats[f"depth/{cam}"] = feat(1, 0.5, 1.5)
    return stats


def make_batch(spec: EnvSpec, batch: int = 3, history: int = 2, chunk: int = 4, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {}
    for cam in spec.cameras:
        out[f"obs/rgb/{cam.name}"] = torch.randint(
            0, 256, (batch, history, cam.height, cam.width, 3), generator=g, dtype=torch.uint8
        )
        out[f"obs/depth/{cam.name}"] = 0.5 + 2 * torch.rand(batch, history, cam.height, cam.width, generator=g)
        k = torch.tensor([[30.0, 0, cam.width / 2], [0, 30.0, cam.height / 2], [0, 0, 1]])
        out[f"obs/intrinsics/{cam.name}"] = k.expand(batch, history, 3, 3).clone()
        out[f"obs/extrinsics/{cam.name}"] = torch.eye(4).expand(batch, history, 4, 4).clone()
    out["obs/state"] = torch.randn(batch, history, len(spec.state_names), generator=g)
    if spec.goal_names:
        out["obs/goal"] = torch.randn(batch, history, len(spec.goal_names), generator=g)
    obs_pad = torch.zeros(batch, history, dtype=torch.bool)
    obs_pad[0, : history - 1] = True
    out["obs_is_pad"] = obs_pad
    out["action"] = (torch.rand(batch, chunk, spec.action.dim, generator=g) * 2 - 1) * 0.8
    act_pad = torch.zeros(batch, chunk, dtype=torch.bool)
    act_pad[-1, chunk // 2 :] = True
    out["action_is_pad"] = act_pad
    out["instruction"] = [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(batch)]
    out["task_index"] = torch.arange(batch) % len(INSTRUCTIONS)
    return out


def tiny_config(head: str = "l1", **overrides: Any) -> PolicyConfig:
    head_cfg = HeadConfig(
        name=head,
        grid_translation=[4, 4, 2],
        grid_rotation=[2, 2, 2],
        num_bins=32,
        **overrides.pop("head_overrides", {}),
    )
    return PolicyConfig(size="tiny", head=head_cfg, **{"history": 2, "chunk": 4, "replan_every": 2, **overrides})


def make_policy(head: str = "l1", spec: EnvSpec | None = None, **overrides: Any):
    spec = spec or make_spec()
    samples = np.random.default_rng(0).uniform(-1, 1, (500, spec.action.dim)).astype(np.float32)
    torch.manual_seed(0)
    return build_policy(tiny_config(head, **overrides), spec, make_stats(spec), INSTRUCTIONS, action_samples=samples)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and a busy 2-core machine makes two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def synthetic() -> dict[str, Callable[..., Any]]:
    """The factories above, for tests (conftest modules cannot be imported under importlib mode)."""
    return {"spec": make_spec, "stats": make_stats, "batch": make_batch, "config": tiny_config, "policy": make_policy}


@pytest.fixture(scope="module", params=["paligemma", "idefics3"])
def base(request, tmp_path_factory) -> tuple[str, Path]:
    """(family, directory) of a tiny random base VLM of each family, as save_pretrained writes it."""
    from polyact.policies.vlm.tiny import write_tiny_base

    family = request.param
    return family, write_tiny_base(tmp_path_factory.mktemp(f"vlm_{family}"), family, INSTRUCTIONS)


def train_steps(
    policy: torch.nn.Module,
    batch: dict[str, Any],
    steps: int,
    loss: Callable[[Any, dict[str, Any]], torch.Tensor] | None = None,
) -> list[float]:
    """`steps` AdamW steps (lr 1e-2) on one fixed batch; the losses before each step. `loss(policy, batch)`
    defaults to the policy's own compute_loss."""
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    policy.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        value = loss(policy, batch) if loss else policy.compute_loss(batch)[0]
        value.backward()
        optimizer.step()
        losses.append(value.item())
    return losses

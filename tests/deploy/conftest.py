"""A tiny trained-shape policy saved as a checkpoint, and observations for it (no simulator needed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from polyact.contract import ActionSpec, CameraSpec, EnvSpec
from polyact.deploy.policy import ServedPolicy, load_served_policy
from polyact.policies import HeadConfig, PolicyConfig, VisionConfig, build_policy

INSTRUCTIONS = ["pick up the red block", "open the drawer", "push the button"]
SIZE = 32


def make_spec() -> EnvSpec:
    return EnvSpec(
        suite="synthetic",
        tasks=("t0",),
        cameras=(CameraSpec("corner", SIZE, SIZE),),
        state_names=("ee_x", "ee_y", "ee_z", "grip"),
        goal_names=("goal_x", "goal_y", "goal_z"),
        action=ActionSpec(("dx", "dy", "dz", "grip"), (-1.0,) * 4, (1.0,) * 4, "synthetic"),
        control_hz=10.0,
        max_episode_steps=50,
    )


def _stats(spec: EnvSpec) -> dict[str, dict[str, Any]]:
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

    return {
        "action": feat(4),
        "state": feat(4),
        "goal": feat(3),
        "rgb/corner": feat(3, 60.0, 120.0),
        "depth/corner": feat(1, 0.5, 1.5),
    }


def make_observation(seed: int = 0) -> dict[str, Any]:
    """A contract observation of the synthetic environment (extrinsics included: clients send what
    their environment gives; the client drops what the policy does not read)."""
    rng = np.random.default_rng(seed)
    return {
        "rgb/corner": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
        "depth/corner": rng.uniform(0.5, 2.5, (SIZE, SIZE)).astype(np.float32),
        "intrinsics/corner": np.array([[30, 0, 16], [0, 30, 16], [0, 0, 1]], np.float32),
        "extrinsics/corner": np.eye(4, dtype=np.float32),
        "state": rng.normal(size=4).astype(np.float32),
        "goal": rng.normal(size=3).astype(np.float32),
        "instruction": INSTRUCTIONS[seed % len(INSTRUCTIONS)],
    }


@pytest.fixture(scope="session")
def stats() -> dict[str, dict[str, Any]]:
    """Normalisation statistics of the synthetic environment (every feature a policy may read)."""
    return _stats(make_spec())


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> tuple[str, str]:
    """(policy directory, EnvSpec JSON file) of a tiny l1 policy that reads rgb, depth, state and goal; the
    directory holds the spec too (env_spec.json), the file is for the `spec=` override."""
    root = tmp_path_factory.mktemp("serve")
    spec = make_spec()
    config = PolicyConfig(
        size="tiny", head=HeadConfig(name="l1"), vision=VisionConfig(depth=True), history=2, chunk=4, replan_every=2
    )
    torch.manual_seed(0)
    policy = build_policy(config, spec, _stats(spec), INSTRUCTIONS)
    policy.save_pretrained(root / "policy")
    (root / "spec.json").write_text(json.dumps(spec.to_dict()))
    return str(root / "policy"), str(root / "spec.json")


@pytest.fixture(scope="session")
def served(checkpoint) -> ServedPolicy:
    return load_served_policy(checkpoint[0])


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and on 2 cores the server and its clients share them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def observation() -> Callable[[int], dict[str, Any]]:
    return make_observation

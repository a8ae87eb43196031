"""Synthetic episodes that follow the contract, for tests and benchmarks of the storage layer.

`rendered=True` draws images that compress like simulator renders (smooth shading, a textured table,
an arm and an object that move) and matching depth; otherwise pixels are uniform noise (fast, and the
worst case for compression).
"""

from __future__ import annotations

import numpy as np

from polyact.contract import ActionSpec, CameraSpec, EnvSpec, intrinsics_from_fovy
from polyact.data.episode import Episode


def synthetic_env_spec(
    cameras: tuple[str, ...] = ("corner", "wrist"),
    height: int = 16,
    width: int = 16,
    state_dim: int = 5,
    goal_dim: int = 3,
    action_dim: int = 4,
    tasks: tuple[str, ...] = ("reach", "push", "pick-place"),
) -> EnvSpec:
    names = tuple(f"a{i}" for i in range(action_dim))
    return EnvSpec(
        suite="synthetic",
        tasks=tasks,
        cameras=tuple(CameraSpec(c, height, width) for c in cameras),
        state_names=tuple(f"s{i}" for i in range(state_dim)),
        goal_names=tuple(f"g{i}" for i in range(goal_dim)),
        action=ActionSpec(names, (-1.0,) * action_dim, (1.0,) * action_dim, "synthetic deltas"),
        control_hz=10.0,
        max_episode_steps=500,
    )


def synthetic_episode(
    spec: EnvSpec, length: int, *, seed: int, task: str | None = None, rendered: bool = False
) -> Episode:
    """An episode of `length` steps whose every array is a function of `seed`."""
    rng = np.random.default_rng(seed)
    task = task if task is not None else spec.tasks[seed % len(spec.tasks)]
    obs: dict[str, np.ndarray] = {}
    for cam in spec.cameras:
        shape = (length, cam.height, cam.width)
        if rendered:
            obs[f"rgb/{cam.name}"], obs[f"depth/{cam.name}"] = _rendered(rng, *shape)
        else:
            obs[f"rgb/{cam.name}"] = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
            obs[f"depth/{cam.name}"] = rng.uniform(0.1, 3.0, shape).astype(np.float32)
        obs[f"intrinsics/{cam.name}"] = np.broadcast_to(
            intrinsics_from_fovy(45.0, cam.height, cam.width), (length, 3, 3)
        ).copy()
        pose = np.tile(np.eye(4, dtype=np.float32), (length, 1, 1))
        pose[:, :3, 3] = np.cumsum(rng.normal(0, 0.01, (length, 3)), axis=0) + rng.normal(0, 1, 3)
        obs[f"extrinsics/{cam.name}"] = pose
    obs["state"] = np.cumsum(rng.normal(0, 0.1, (length, len(spec.state_names))), axis=0).astype(np.float32)
    if spec.goal_names:
        obs["goal"] = np.broadcast_to(rng.normal(0, 1, len(spec.goal_names)), (length, len(spec.goal_names)))
        obs["goal"] = obs["goal"].astype(np.float32)
    successes = np.zeros(length, bool)
    success = bool(rng.random() < 0.7)
    successes[-1] = success
    return Episode(
        task=task,
        instruction=f"{task} the object (variant {seed % 2})",
        seed=seed,
        success=success,
        observations=obs,
        actions=rng.uniform(-1, 1, (length, spec.action.dim)).astype(np.float32),
        rewards=rng.normal(0, 1, length).astype(np.float32),
        successes=successes,
        extra={"source": "synthetic", "seed": seed},
    )


def _rendered(rng: np.random.Generator, length: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Render-like RGB (T, H, W, 3) uint8 and depth (T, H, W) float32: table, wall, a moving arm and object."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / np.float32(max(height, width))
    horizon = rng.uniform(0.25, 0.4)
    wall = yy < horizon
    table_colour = rng.uniform(60, 200, 3)
    base = np.where(
        wall[..., None], np.array([185.0, 190, 200]) - 20 * yy[..., None], table_colour * (0.8 + 0.4 * yy[..., None])
    )
    grain = 10 * np.sin(xx * 40 + 4 * np.sin(yy * 9)) * (1 + 0.3 * np.sin(yy * 90))  # wood-like texture
    base = base + np.where(wall, 0, grain)[..., None]
    base *= (1 - 0.3 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2))[..., None]  # lighting falloff
    depth_base = np.where(wall, 2.5, 0.8 + 1.2 * (1 - yy)).astype(np.float32)

    start, obj, goal = rng.uniform(0.2, 0.8, 2), rng.uniform([0.2, 0.55], [0.8, 0.85]), rng.uniform(0.2, 0.8, 2)
    colour = rng.uniform(20, 235, 3)
    rgb = np.empty((length, height, width, 3), np.uint8)
    depth = np.empty((length, height, width), np.float32)
    for t in range(length):
        a = t / max(length - 1, 1)
        grip = start + (obj - start) * min(2 * a, 1) + (goal - obj) * max(2 * a - 1, 0)  # (x, y) of the gripper
        held = obj if a < 0.5 else grip
        img, dep = base.copy(), depth_base.copy()
        # the arm: a shaded segment from the top edge to the gripper
        direction = np.array([grip[0] - 0.5, grip[1]])
        dist = np.abs((xx - 0.5) * direction[1] - yy * direction[0]) / (np.linalg.norm(direction) + 1e-6)
        arm = (dist < 0.03) & (yy <= grip[1] + 0.02)
        img[arm] = np.array([95.0, 95, 105])[None] * (0.6 + 0.4 * (1 - dist[arm, None] / 0.03))
        dep[arm] = 0.5 + 0.3 * yy[arm]
        # the object: a shaded disc
        r = np.hypot(xx - held[0], yy - held[1])
        disc = r < 0.06
        img[disc] = colour * (0.65 + 0.35 * (1 - r[disc, None] / 0.06))
        dep[disc] = 0.6 + 0.3 * held[1] + r[disc]
        rgb[t] = np.clip(img, 0, 255).astype(np.uint8)
        depth[t] = dep
    return rgb, depth

"""Rendered collection throughput: polyact's Meta-World env against metaworld's default render path.

Both sides step the same MT10 tasks with the same scripted experts and render one 128x128 `corner`
camera per step, in one process, in the same run. polyact also returns depth, intrinsics and
extrinsics from that render; metaworld returns RGB only.

    python -m polyact.bench.render [--steps 150] [--size 128]
"""

from __future__ import annotations

import argparse
import time
import warnings

import gymnasium as gym
import numpy as np

from polyact.bench.common import header
from polyact.envs.config import EnvConfig
from polyact.envs.metaworld import TASK_SETS
from polyact.envs.registry import make_env, make_expert


def polyact_steps_per_second(tasks: tuple[str, ...], steps: int, size: int) -> float:
    total, elapsed = 0, 0.0
    for task in tasks:
        env = make_env(task, EnvConfig(tasks=task, cameras=["corner"], height=size, width=size))
        expert = make_expert(env)
        obs, info = env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            obs, _, _, truncated, info = env.step(expert.act(obs, info))
            if truncated:
                obs, info = env.reset(seed=1)
        elapsed += time.perf_counter() - start
        total += steps
        env.close()
    return total / elapsed


def metaworld_steps_per_second(tasks: tuple[str, ...], steps: int, size: int) -> float:
    from metaworld.policies import ENV_POLICY_MAP

    total, elapsed = 0, 0.0
    for task in tasks:
        env = gym.make(
            "Meta-World/MT1", env_name=task, render_mode="rgb_array", camera_name="corner", width=size, height=size
        )
        policy = ENV_POLICY_MAP[task]()
        obs, _ = env.reset(seed=0)
        env.render()  # the first frame creates the GL context; not counted on either side
        start = time.perf_counter()
        for _ in range(steps):
            obs, _, _, truncated, _ = env.step(np.clip(policy.get_action(obs), -1, 1))
            env.render()
            if truncated:
                obs, _ = env.reset(seed=1)
        elapsed += time.perf_counter() - start
        total += steps
        env.close()
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150, help="steps per task on each side")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tasks = TASK_SETS["MT10"]
    ours = polyact_steps_per_second(tasks, args.steps, args.size)
    theirs = metaworld_steps_per_second(tasks, args.steps, args.size)
    print(header("rendered collection throughput, one process, MT10 scripted experts"))
    print(f"camera: corner {args.size}x{args.size}; {args.steps} steps per task, {len(tasks)} tasks per side")
    print(f"metaworld default render path (RGB):        {theirs:8.1f} env steps/s")
    print(f"polyact fast render (RGB + depth + camera):  {ours:8.1f} env steps/s")
    print(f"ratio: {ours / theirs:.1f}x")


if __name__ == "__main__":
    main()

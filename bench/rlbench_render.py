"""Rendered rlbench_like env steps per second: one camera against all five, side by side.

Each task runs its scripted expert for `--steps` steps (resetting on success or truncation) at
`--size`x`--size`, fast render quality, in one process; a step is one control step (25 physics
steps, inverse kinematics) plus RGB-D of every configured camera. Close and reset time is excluded.

    python -m polyact.bench.rlbench_render [--steps 100] [--size 128] [--tasks open_drawer ...]
"""

from __future__ import annotations

import argparse
import time

from polyact.bench.common import header
from polyact.envs.config import EnvConfig
from polyact.envs.registry import make_env, make_expert
from polyact.envs.rlbench_like import SUITE
from polyact.envs.rlbench_like.scene import CAMERAS


def steps_per_second(tasks: tuple[str, ...], cameras: tuple[str, ...], steps: int, size: int) -> float:
    total, elapsed = 0, 0.0
    for task in tasks:
        env = make_env(task, EnvConfig(tasks=task, cameras=list(cameras), height=size, width=size))
        expert = make_expert(env)
        obs, info = env.reset(seed=0)
        expert.reset()
        seed = 0
        start = time.perf_counter()
        for _ in range(steps):
            obs, _, _, truncated, info = env.step(expert.act(obs, info))
            if info["success"] or truncated:
                seed += 1
                obs, info = env.reset(seed=seed)
                expert.reset()
        elapsed += time.perf_counter() - start
        total += steps
        env.close()
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="steps per task and camera set")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--tasks", nargs="*", default=list(SUITE.tasks))
    args = parser.parse_args()
    tasks = tuple(args.tasks)
    print(header("rlbench_like rendered env steps/s"))
    print(f"{len(tasks)} tasks x {args.steps} expert steps, {args.size}x{args.size} RGB-D, fast quality, one process")
    one = steps_per_second(tasks, ("front",), args.steps, args.size)
    five = steps_per_second(tasks, CAMERAS, args.steps, args.size)
    print("| cameras | steps/s | ms/step |")
    print("|---|---|---|")
    print(f"| 1 (front) | {one:.1f} | {1000 / one:.1f} |")
    print(f"| 5 (all) | {five:.1f} | {1000 / five:.1f} |")


if __name__ == "__main__":
    main()

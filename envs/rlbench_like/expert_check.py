"""Measure the scripted experts' success rate: every task over N seeds, printed as a markdown table.

    python -m polyact.envs.rlbench_like.expert_check [--seeds 100] [--tasks open_drawer ...]
        [--split train] [--action-mode default] [--jobs 2]

An episode succeeds when `info["success"]` is true at any step within the env's step limit. One
small camera is rendered (the env always renders), so this measures physics and control, not images.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

from polyact.envs.config import EnvConfig


def run_task(task: str, seeds: int, split: str, action_mode: str) -> tuple[str, int, int, float, float]:
    """(task, successes, episodes, mean steps of successful episodes, seconds)."""
    from polyact.envs.rlbench_like import SUITE

    start = time.perf_counter()
    env = SUITE.make_env(task, EnvConfig(tasks=task, cameras=["front"], height=8, width=8, action_mode=action_mode))
    expert = SUITE.make_expert(env)
    wins, steps = 0, []
    try:
        for seed in range(seeds):
            obs, info = env.reset(seed=seed, options={"variation_split": split})
            expert.reset()
            for t in range(env.contract.max_episode_steps):
                obs, _, _, truncated, info = env.step(expert.act(obs, info))
                if info["success"]:
                    wins += 1
                    steps.append(t + 1)
                    break
    finally:
        env.close()
    mean_steps = sum(steps) / len(steps) if steps else float("nan")
    return task, wins, seeds, mean_steps, time.perf_counter() - start


def main() -> None:
    from polyact.envs.rlbench_like import SUITE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--tasks", nargs="*", default=list(SUITE.tasks))
    parser.add_argument("--split", default="train", choices=["train", "test", "all"])
    parser.add_argument("--action-mode", default="default", choices=["default", "joint_position", "keyframe"])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    jobs = [(t, args.seeds, args.split, args.action_mode) for t in args.tasks]
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        rows = pool.starmap(run_task, jobs)
    print(f"| task | success ({args.split} variations, {args.action_mode}) | mean steps to success | seconds |")
    print("|---|---|---|---|")
    for task, wins, n, mean_steps, seconds in rows:
        print(f"| {task} | {wins}/{n} ({100 * wins / n:.0f}%) | {mean_steps:.0f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()

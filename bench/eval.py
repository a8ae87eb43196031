"""Evaluation throughput: env steps per second with the policy in the loop, N workers against 1.

Runs the same episodes (seeded, so identical work) through `polyact.eval`'s rollout loop — worker
processes (gymnasium AsyncVectorEnv, spawn), one batched `act` per control step — under the scripted
experts and under a random-action policy (a stand-in for a cheap policy: every episode runs to the
step limit), with 1, 2 and 4 workers, all in one run. Worker start-up is timed separately; the
throughput includes building each task's environment when a worker first meets it, as evaluation does.
The configurations are measured in turn, `--repeats` rounds, and each one's best and median rate are
reported: on a shared machine the best round is the one least disturbed by other processes.

    python -m polyact.bench.eval [--workers 1 2 4] [--episodes 4] [--steps 100] [--size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Sequence
from functools import partial
from statistics import median
from typing import Any

import gymnasium as gym
import numpy as np

from polyact.bench.common import header
from polyact.envs.config import EnvConfig
from polyact.envs.vector import vector_env
from polyact.eval.episodes import plan_jobs
from polyact.eval.policy import BatchPolicy, ExpertPolicy
from polyact.eval.rollout import run_episodes, start_tasks
from polyact.eval.worker import EvalEnv

TASKS = ("reach-v3", "push-v3", "drawer-open-v3")


class RandomPolicy:
    """Uniform random actions from a seeded generator: costs nothing, never succeeds early."""

    requirements = None

    def __init__(self, action_dim: int, seed: int = 0):
        self._rng = np.random.default_rng(seed)
        self._dim = action_dim

    def reset(self, env_ids: Sequence[int]) -> None:
        """Stateless."""

    def act(self, obs: dict[str, Any], infos: Sequence[dict[str, Any]], env_ids: Sequence[int]) -> np.ndarray:
        return self._rng.uniform(-1.0, 1.0, (len(env_ids), self._dim)).astype(np.float32)


def measure(policy_name: str, workers: int, cfg: EnvConfig, episodes: int) -> dict[str, float]:
    jobs = plan_jobs(TASKS, episodes, "seeds", 0, set())
    expert = policy_name == "expert"
    policy: BatchPolicy = ExpertPolicy() if expert else RandomPolicy(4)
    start = time.perf_counter()
    fns = [partial(EvalEnv, cfg, task, expert) for task in start_tasks(jobs, workers)]
    vec = vector_env(fns, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    startup = time.perf_counter() - start
    try:
        stats = run_episodes(vec, policy, jobs, lambda result, frames: None)
    finally:
        vec.close()
    return {
        "steps": stats.env_steps,
        "wall": stats.wall_time_s,
        "startup": startup,
        "rate": stats.env_steps / stats.wall_time_s,
        "calls": stats.policy_calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--episodes", type=int, default=4, help="episodes per task")
    parser.add_argument("--steps", type=int, default=100, help="step limit per episode")
    parser.add_argument("--size", type=int, default=64, help="camera resolution (corner, RGB-D)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all configurations")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    cfg = EnvConfig(tasks="MT10", cameras=["corner"], height=args.size, width=args.size, max_episode_steps=args.steps)
    load = os.getloadavg()[0]
    configs = [(p, w) for p in ("expert", "random") for w in args.workers]
    runs: dict[tuple[str, int], list[dict[str, float]]] = {c: [] for c in configs}
    for _ in range(args.repeats):
        for policy_name, workers in configs:
            runs[policy_name, workers].append(measure(policy_name, workers, cfg, args.episodes))
    print(header("evaluation throughput (polyact.eval rollouts, Meta-World)"))
    print(f"load average before the run: {load:.1f}, after: {os.getloadavg()[0]:.1f} (other processes share the cores)")
    print(
        f"tasks {', '.join(TASKS)}; {args.episodes} episodes each; step limit {args.steps}; "
        f"corner camera {args.size}x{args.size} RGB-D; best and median of {args.repeats} rounds"
    )
    print(
        f"{'policy':<7} {'workers':>7} {'env steps':>9} {'act calls':>9} {'best steps/s':>12} {'median':>7} "
        f"{'best vs 1':>9} {'start-up s':>10}"
    )
    for policy_name, workers in configs:
        ms = runs[policy_name, workers]
        best = max(m["rate"] for m in ms)
        base = max(m["rate"] for m in runs[policy_name, args.workers[0]])
        print(
            f"{policy_name:<7} {workers:>7} {ms[0]['steps']:>9} {ms[0]['calls']:>9} {best:>12.1f} "
            f"{median(m['rate'] for m in ms):>7.1f} {best / base:>8.2f}x {median(m['startup'] for m in ms):>10.1f}"
        )


if __name__ == "__main__":
    main()

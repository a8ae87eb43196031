"""Evaluation throughput, Ray runner against the local runner: episodes per second on this machine.

The same seeded episodes (MT10 tasks, short episodes) under three policies: the scripted experts;
an untrained `small` l1 policy (bench/policies.py's, built for the environment's real spec) run in
each worker; and the same policy served by `polyact serve`'s server (one process, the requests of all
workers batched) that the workers call through deploy/served_slots.py. Runners: the local one (worker
processes of one AsyncVectorEnv, one batched `act` per step in the main process) and Ray actors (one
environment and one policy slot each) on a local cluster of this machine's cores, with 1 and 2
workers. Each figure is the wall time of the whole rollout, worker start-up included (what a user
waits for), the cluster itself started once beforehand. The configurations run in turn, `--rounds`
times, in one run; each one's best round is reported (on a shared machine, the least disturbed; the
first round also pays for cold imports and caches).

    python -m polyact.bench.ray_eval [--episodes 2] [--steps 60] [--size 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from polyact.bench.common import header
from polyact.envs.config import EnvConfig
from polyact.envs.vector import vector_env
from polyact.eval.config import EvalConfig
from polyact.eval.episodes import plan_jobs
from polyact.eval.rollout import run_episodes, start_tasks
from polyact.eval.run import policy_for_eval, probe_spec
from polyact.eval.worker import EvalEnv
from polyact.runners import connect_ray

TASKS = ["reach-v3", "push-v3"]


def small_checkpoint(env: EnvConfig, directory: Path) -> str:
    """An untrained `small` l1 policy for the environment's spec, saved as a checkpoint directory."""
    from polyact.bench.policies import INSTRUCTIONS, setup
    from polyact.policies import HeadConfig, PolicyConfig, build_policy

    spec = probe_spec(TASKS[0], env)
    _, bench_stats = setup(env.height)
    stats = {
        "action": bench_stats["action"],
        "state": bench_stats["state"],
        "goal": bench_stats["goal"],
        **{f"rgb/{c.name}": bench_stats["rgb/corner"] for c in spec.cameras},
    }
    cfg = PolicyConfig(size="small", head=HeadConfig(name="l1"), history=1, chunk=8, replan_every=4)
    samples = np.random.default_rng(0).uniform(-1, 1, (2000, spec.action.dim)).astype(np.float32)
    policy = build_policy(cfg, spec, stats, INSTRUCTIONS, action_samples=samples)
    return str(policy.save_pretrained(directory / "small"))


def local(cfg: EvalConfig, workers: int, make_policy: Callable[[int], Any]) -> int:
    """The local runner's rollout of every planned episode; returns the episodes run."""
    jobs = plan_jobs(cfg.tasks, cfg.episodes_per_task, cfg.protocol, cfg.goal_seed, set())
    expert = cfg.policy == "expert"
    fns = [partial(EvalEnv, cfg.env, task, expert) for task in start_tasks(jobs, workers)]
    vec = vector_env(fns, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    try:
        return run_episodes(vec, make_policy(workers), jobs, lambda r, f: None).episodes
    finally:
        vec.close()


def on_ray(cfg: EvalConfig, workers: int, make_policy: Callable[[], Any] | None) -> int:
    from polyact.eval.ray_runner import roll_out_on_ray

    cfg = EvalConfig(**{**vars(cfg), "runner": "ray", "workers": workers})
    jobs = plan_jobs(cfg.tasks, cfg.episodes_per_task, cfg.protocol, cfg.goal_seed, set())
    return roll_out_on_ray(cfg, jobs, lambda r, f: None, lambda job: False, make_policy=make_policy).stats.episodes


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    episodes = fn()
    return time.perf_counter() - start, episodes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=2, help="episodes per task (2 tasks)")
    parser.add_argument("--steps", type=int, default=60, help="step limit of an episode")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="camera height and width")
    args = parser.parse_args(argv)

    import ray
    import torch

    from polyact.deploy.config import ServeConfig
    from polyact.deploy.policy import load_served_policy
    from polyact.deploy.served_slots import ServedSlots
    from polyact.deploy.server import serve_in_thread

    env = EnvConfig(tasks="MT10", height=args.size, width=args.size, max_episode_steps=args.steps)
    common = dict(env=env, only_tasks=TASKS, episodes_per_task=args.episodes, videos=False, progress=False)
    tmp = Path(tempfile.mkdtemp(prefix="ray_eval_"))
    small = small_checkpoint(env, tmp)
    expert_cfg = EvalConfig(policy="expert", **common)
    small_cfg = EvalConfig(policy=small, **common)
    torch.set_num_threads(1)  # the server's; Ray's workers get 1 thread each (their num_cpus)

    print(header("polyact eval: Ray runner against the local runner (episodes/s)"))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(
        f"ray {ray.__version__}, torch {torch.__version__}; tasks {', '.join(TASKS)}, {args.episodes} episodes each, "
        f"at most {args.steps} steps, {args.size}x{args.size} camera; small = untrained small l1 policy, chunk 8, "
        "re-planned every 4 steps; wall time of the whole rollout, worker start-up included\n"
    )
    connect_ray("")  # a local cluster of this machine's cores, its start retried on a busy machine
    best: dict[tuple[str, str, int], tuple[float, int]] = {}  # (policy, runner, workers) -> (s, episodes)
    server = serve_in_thread(load_served_policy(small), ServeConfig(policy=small, host="127.0.0.1", port=0))
    with server as thread:
        url = f"ws://127.0.0.1:{thread.port}"
        for r, workers in [(r, w) for r in range(args.rounds) for w in (1, 2)]:
            runs = [
                ("expert", "local", partial(local, expert_cfg, workers, lambda n: policy_for_eval(expert_cfg, n))),
                ("expert", "ray", partial(on_ray, expert_cfg, workers, None)),
                (
                    "small, in worker",
                    "local",
                    partial(local, small_cfg, workers, lambda n: policy_for_eval(small_cfg, n)),
                ),
                ("small, in worker", "ray", partial(on_ray, small_cfg, workers, None)),
                ("small, served", "local", partial(local, small_cfg, workers, partial(ServedSlots, url))),
                ("small, served", "ray", partial(on_ray, small_cfg, workers, partial(ServedSlots, url, 1))),
            ]
            for policy, runner, run in runs:
                seconds, episodes = timed(run)
                key = (policy, runner, workers)
                best[key] = min(best.get(key, (seconds, episodes)), (seconds, episodes))
                line = f"{policy:<17} {runner:<5} {workers} worker(s): {episodes} episodes in {seconds:.1f} s"
                print(f"  round {r + 1}: {line}", flush=True)
    ray.shutdown()
    print(f"\nbest of {args.rounds} round(s):\n| policy | runner | workers | episodes/s | wall time | ray / local |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    rate = {key: e / s for key, (s, e) in best.items()}
    for (p, r, w), (s, e) in sorted(best.items(), key=lambda item: (item[0][2], item[0][0], item[0][1])):
        ratio = f"{rate[p, r, w] / rate[p, 'local', w]:.2f}x" if r == "ray" else ""
        print(f"| {p} | {r} | {w} | {e / s:.3f} | {s:.1f} s | {ratio} |")


if __name__ == "__main__":
    main()

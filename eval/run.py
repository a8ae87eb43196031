"""`polyact eval`: check the policy against the suite, roll out the missing episodes, write results.

Everything that can be wrong with the input (unknown task, a checkpoint for other cameras or another
action space, a training dataset that contains evaluation seeds, a run directory made with other
settings) fails before the first worker starts.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from polyact.contract import EnvSpec, check_compatible
from polyact.envs.config import EnvConfig
from polyact.envs.registry import make_env, resolve_tasks
from polyact.envs.vector import vector_env
from polyact.errors import ConfigError
from polyact.eval.config import EvalConfig
from polyact.eval.episodes import EpisodeJob, check_disjoint, eval_seed, plan_jobs
from polyact.eval.groups import task_groups
from polyact.eval.policy import BatchPolicy, ExpertPolicy
from polyact.eval.results import markdown, write_results
from polyact.eval.rollout import OnFinished, RolloutStats, run_episodes, start_tasks
from polyact.eval.stats import summarise
from polyact.eval.store import EpisodeResult, EpisodeStore
from polyact.eval.videos import VideoChooser
from polyact.eval.worker import EvalEnv
from polyact.sysinfo import machine

if TYPE_CHECKING:
    from polyact.deploy.served_slots import ServedSlots
    from polyact.eval.ray_runner import RayRolloutStats

TOKEN_ENV = "POLYACT_TOKEN"  # the bearer token of a served policy, as `polyact serve` reads it


def policy_for_eval(cfg: EvalConfig, num_envs: int) -> BatchPolicy:
    if cfg.policy == "expert":
        return ExpertPolicy()
    if cfg.served:
        return served_policy(cfg.policy, num_envs, os.environ.get(TOKEN_ENV))
    from polyact.eval.trained import load_policy

    return load_policy(cfg.policy, num_envs, cfg.execution, cfg.device)


def served_policy(url: str, num_envs: int, token: str | None = None) -> ServedSlots:
    """`num_envs` slots acting through the `polyact serve` at `url`, or ConfigError saying in one line why
    it cannot be reached or used (no torch: the policy runs in the server)."""
    from polyact.deploy.client import PolicyServerError, ServerUnavailable
    from polyact.deploy.served_slots import ServedSlots

    try:
        return ServedSlots(url, num_envs, token)
    except (ServerUnavailable, PolicyServerError) as err:
        raise ConfigError(f"policy={url}: {err}") from None


def probe_spec(task: str, env_cfg: EnvConfig) -> EnvSpec:
    """The contract the workers' environments will have (built once here, before any worker starts)."""
    env = make_env(task, env_cfg)
    try:
        return env.contract
    finally:
        env.close()


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Run (or resume) the evaluation that `cfg` describes; return what results.json holds."""
    suite = resolve_tasks(cfg.env.tasks)[0]
    tasks = cfg.tasks
    if cfg.train_dataset:
        check_disjoint(cfg.train_dataset, tasks, cfg.episodes_per_task, cfg.protocol)
    workers = cfg.workers or os.cpu_count() or 1
    policy = policy_for_eval(cfg, workers)
    identity = cfg.identity()
    served = policy.client.metadata["policy"] if cfg.served else None  # what the server says it serves
    if served is not None:
        identity["served_policy"] = served  # the same URL serving another checkpoint is another run
    try:
        spec = probe_spec(tasks[0], cfg.env)
        check_compatible(policy.requirements, spec, f"policy {cfg.policy!r}")
        out = cfg.out_dir
        store = EpisodeStore(out, identity)
        try:
            for message in store.messages:
                print(message)
            jobs = plan_jobs(tasks, cfg.episodes_per_task, cfg.protocol, cfg.goal_seed, set(store.results))
            wanted = [(t, i) for t in tasks for i in range(cfg.episodes_per_task)]
            resumed = len(wanted) - len(jobs)
            finished = [store.results[k] for k in wanted if k in store.results]
            chooser = VideoChooser(out, finished)
            stats = RolloutStats(0, 0, 0, 0.0)
            retried: list[dict[str, Any]] = []
            restarts = 0
            if jobs and cfg.runner == "ray":
                ray_stats = _roll_out_on_ray(cfg, jobs, store, chooser, spec, finished)
                stats, workers, restarts = ray_stats.stats, ray_stats.workers, ray_stats.restarts
                retried = [asdict(r) for r in ray_stats.retries]
            elif jobs:
                n = min(workers, len(jobs))
                stats = _roll_out(cfg, n, policy, jobs, store, chooser, spec, finished, len(wanted))
        finally:
            store.close()
    finally:
        if cfg.served:
            policy.close()

    results = [store.results[k] for k in wanted]
    summary = summarise(results, tasks, task_groups(suite.name))
    videos, missing = chooser.prune(results) if cfg.videos else ([], [])
    header = {
        "policy": cfg.policy,
        "served_policy": served,  # policy=ws://...: the name its `polyact serve` gives the checkpoint
        "tasks": cfg.env.tasks,
        "only_tasks": list(cfg.only_tasks),
        "suite": suite.name,
        "protocol": cfg.protocol,
        "observation": cfg.observation,
        "seeds": f"episode i starts from seed {eval_seed(0, cfg.protocol)} + i"
        + (
            f", goal configuration i of metaworld.MT1(task, seed={cfg.goal_seed})"
            if cfg.protocol == "metaworld_goals"
            else ""
        ),
        "episodes_per_task": cfg.episodes_per_task,
        "env": asdict(cfg.env),
        "execution": cfg.execution,
        "runner": cfg.runner,
        "workers": min(workers, len(jobs)) if jobs else 0,
        "workers_restarted": restarts,  # runner=ray: workers replaced after their process or node was lost
        "episodes_retried": retried,  # runner=ray: episodes run again after their worker was lost
        "episodes_run": stats.episodes,
        "episodes_resumed": resumed,
        "env_steps": stats.env_steps,
        "wall_time_s": stats.wall_time_s,
        "env_steps_per_s": stats.env_steps / stats.wall_time_s if stats.wall_time_s else None,
        "videos": [p.name for p in videos],
        "videos_missing": missing,
        "machine": machine(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    return write_results(out, header, summary)


def _recorder(
    cfg: EvalConfig, store: EpisodeStore, chooser: VideoChooser, spec: EnvSpec
) -> tuple[OnFinished, Callable[[EpisodeJob], bool]]:
    """What both runners do with a finished episode (video, then the fsynced line) and the video choice."""

    def on_finished(result: EpisodeResult, frames: np.ndarray | None) -> None:
        if cfg.videos:
            chooser.finished(result, frames, spec.control_hz)  # the video first: a kill then re-runs it
        store.add(result)

    def record(job: EpisodeJob) -> bool:
        return cfg.videos and chooser.should_record(job.task, job.index)

    return on_finished, record


def _roll_out_on_ray(
    cfg: EvalConfig,
    jobs: list[EpisodeJob],
    store: EpisodeStore,
    chooser: VideoChooser,
    spec: EnvSpec,
    finished: list[EpisodeResult],
) -> RayRolloutStats:
    from polyact.eval.ray_progress import RayProgress
    from polyact.eval.ray_runner import roll_out_on_ray

    on_finished, record = _recorder(cfg, store, chooser, spec)
    # a served policy: each actor's one slot calls the server, with the driver's token
    make_policy = partial(served_policy, cfg.policy, 1, os.environ.get(TOKEN_ENV)) if cfg.served else None
    progress = RayProgress(
        f"eval {cfg.env.tasks} on Ray", cfg.tasks, cfg.episodes_per_task, finished, enabled=cfg.progress
    )
    try:
        return roll_out_on_ray(cfg, jobs, on_finished, record, progress, make_policy)
    finally:
        progress.close()


def _roll_out(
    cfg: EvalConfig,
    workers: int,
    policy: BatchPolicy,
    jobs: list[EpisodeJob],
    store: EpisodeStore,
    chooser: VideoChooser,
    spec: EnvSpec,
    finished: list[EpisodeResult],
    total: int,
) -> RolloutStats:
    expert = cfg.policy == "expert"
    env_fns = [partial(EvalEnv, cfg.env, task, expert) for task in start_tasks(jobs, workers)]
    bar = tqdm(total=total, initial=len(finished), desc=f"eval {cfg.env.tasks}", unit="ep", disable=not cfg.progress)
    successes = sum(r.success for r in finished)
    record_result, record = _recorder(cfg, store, chooser, spec)

    def on_finished(result: EpisodeResult, frames: np.ndarray | None) -> None:
        nonlocal successes
        record_result(result, frames)
        successes += result.success
        bar.update(1)
        bar.set_postfix(success=f"{100 * successes / max(bar.n, 1):.0f}%")

    vec = vector_env(env_fns, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    try:
        stats = run_episodes(vec, policy, jobs, on_finished, record)
    except BaseException:
        # interrupted mid-step (Ctrl-C, a policy error): the workers' replies are out of step, so
        # stop them rather than wait for a conversation that cannot finish
        vec.close(terminate=True)
        raise
    finally:
        bar.close()
    vec.close()
    return stats


def run(cfg: EvalConfig) -> dict[str, Any]:
    """`polyact eval`: evaluate, print the table and where the files are."""
    data = evaluate(cfg)
    print()
    print(markdown(data))
    print(f"results, chart and videos in {cfg.out_dir}/")
    return data

"""Recording scripted demonstrations into a dataset, in parallel worker processes, resumably.

Each task's attempts use seeds `seed, seed+1, ...` in order, and episodes are committed in seed order
whatever order the workers finish in, so a dataset holds exactly the first N successful seeds of each
task. That makes collection deterministic and resumable: after a kill, the same command finds each
task's last committed seed in the dataset and carries on after it.

With `trajectories=PATH.npz` the episodes are not simulated here but rendered from state trajectories
the scripted experts recorded elsewhere (rlbench_like's MJX experts, thousands of seeds at once): each
task's attempts are its trajectories' seeds, in the same order and through the same commit, so the
dataset is the one a direct collection of those seeds writes, and resumes the same way.

It drives simulators (polyact.envs) and writes datasets (polyact.data), so it sits above both and the
storage package never imports a simulator.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from polyact.collect_trajectories import trajectories_to_collect
from polyact.data import DatasetWriter, Episode
from polyact.data.codecs import DEFAULT_IMAGE_QUALITY
from polyact.data.format import DEFAULT_DEPTH_STORAGE, DEFAULT_IMAGE_COMPRESSION
from polyact.data.validate import check_storage
from polyact.envs.catalog import resolve_tasks
from polyact.envs.config import EVAL_SEED_BASE, EnvConfig
from polyact.envs.registry import Expert, make_env, make_expert, suite
from polyact.errors import ConfigError
from polyact.runners import check_runner, connect_ray

if TYPE_CHECKING:
    from polyact.collect_trajectories import Trajectories
    from polyact.envs.base import PolyactEnv
    from polyact.envs.rlbench_like.mjx.trajectory import StateTrajectory


class RayPool:
    """`submit` like a ProcessPoolExecutor's, for Ray tasks on a cluster: each returns a Future.

    Ray reuses its worker processes, so `_record_in_worker`'s per-process environments are kept from
    one task to the next as in the local pool. Ray does not retry a task itself (`max_retries=0`):
    the caller runs a lost worker's attempt again and reports it (`lost_worker`).
    """

    def __init__(self, address: str):
        self.ray = connect_ray(address)
        self._remote: dict[Any, Any] = {}  # function -> its Ray task

    @property
    def cpus(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def submit(self, fn: Any, *args: Any) -> Future:
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(num_cpus=1, max_retries=0)(fn)
        return self._remote[fn].remote(*args).future()

    def lost_worker(self, err: BaseException) -> bool:
        """Whether `err` says the attempt's worker process or node died (not that the attempt failed)."""
        lost = (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.NodeDiedError)
        return isinstance(err, lost)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Tasks still running end with the driver's job; nothing to stop here."""

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


@dataclass
class CollectConfig:
    """`polyact collect`: scripted demonstrations of a task set into the dataset at `out`.

    `runner=ray` records the attempts as Ray tasks on the cluster at `ray_address` (or a local one),
    with the same dataset and resume semantics. `trajectories=PATH.npz` renders the rlbench_like experts'
    recorded states instead of running the experts (`python -m polyact.envs.rlbench_like.mjx.experts --task
    TASK --seeds N --out PATH.npz` records them on MJX): each task's attempts are its trajectories of seeds
    `seed, seed+1, ...`, and the dataset equals a direct collection of those seeds."""

    out: str = "datasets/demos"
    env: EnvConfig = field(default_factory=EnvConfig)
    episodes_per_task: int = 10
    successes_only: bool = True  # keep only successful demonstrations
    stop_on_success: bool = True  # end a demonstration once the task succeeds (see record_episode)
    seed: int = 0  # first seed of every task's attempts
    workers: int = 0  # worker processes; 0 = one per CPU core
    max_attempts_per_task: int = 0  # 0 = 3 x episodes_per_task + 10
    progress: bool = True
    runner: str = "local"  # local: worker processes here; ray: Ray tasks on a cluster (docs/eval.md)
    ray_address: str = ""  # runner=ray: HOST:PORT of `ray start --head`, or auto; '' = a new local cluster
    ray_retries: int = 3  # runner=ray: times one attempt is run again after its worker was lost
    # How a new dataset stores its frames (docs/storage.md); a dataset being extended keeps its own.
    image_compression: str = DEFAULT_IMAGE_COMPRESSION  # none | gzip | lz4 | zstd (lossless) | webp | jpeg (lossy)
    image_quality: int = DEFAULT_IMAGE_QUALITY  # 1-100, of webp and jpeg
    depth_storage: str = DEFAULT_DEPTH_STORAGE  # float32 (metres) | uint16_mm
    trajectories: str = ""  # a state trajectory file (.npz) to render instead of running the experts

    def __post_init__(self) -> None:
        if self.episodes_per_task < 1:
            raise ConfigError(f"episodes_per_task must be >= 1, got {self.episodes_per_task}")
        if not 0 <= self.seed < EVAL_SEED_BASE:
            raise ConfigError(
                f"seed must be in [0, {EVAL_SEED_BASE}): seeds from {EVAL_SEED_BASE} up are kept for evaluation"
            )
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0 = one per CPU core), got {self.workers}")
        if self.max_attempts_per_task < 0:
            raise ConfigError(f"max_attempts_per_task must be >= 0, got {self.max_attempts_per_task}")
        check_runner(self.runner, self.ray_address, self.ray_retries)
        self.storage()

    def storage(self) -> dict[str, Any]:
        """The storage settings as DatasetWriter.create takes them and a dataset reports them."""
        return check_storage(self.image_compression, self.depth_storage, self.image_quality)

    @property
    def attempts_limit(self) -> int:
        return self.max_attempts_per_task or 3 * self.episodes_per_task + 10

    def identity(self) -> dict[str, Any]:
        """The settings a dataset must have been collected with to be extended by this config."""
        return {
            "env": self.env.identity(),
            "seed": self.seed,
            "successes_only": self.successes_only,
            "stop_on_success": self.stop_on_success,
        }


def record_episode(env: PolyactEnv, expert: Expert, seed: int, stop_on_success: bool = True) -> Episode:
    """Roll the expert out from `reset(seed)` until success (if asked), termination or truncation.

    An expert with a `finished` attribute (a waypoint script) is let finish its script after the task
    succeeds, so the demonstration ends at the script's last waypoint, at rest, as RLBench's demos do:
    that last pose is the final keyframe a keyframe policy learns to reach."""
    obs, info = env.reset(seed=seed)
    expert.reset()
    frames: list[dict[str, Any]] = []
    actions, rewards, successes = [], [], []
    succeeded = False
    while True:
        action = expert.act(obs, info)
        frames.append({k: v for k, v in obs.items() if k != "instruction"})
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(env.contract.check_action(action))
        rewards.append(reward)
        successes.append(info["success"])
        succeeded = succeeded or info["success"]
        if (stop_on_success and succeeded and getattr(expert, "finished", True)) or terminated or truncated:
            break
    return Episode(
        task=env.task,
        instruction=env.instruction,
        seed=seed,
        success=bool(any(successes)),
        observations={k: np.stack([f[k] for f in frames]) for k in frames[0]},
        actions=np.stack(actions).astype(np.float32),
        rewards=np.asarray(rewards, np.float32),
        successes=np.asarray(successes, bool),
    )


_WORKER_ENVS: dict[str, tuple[PolyactEnv, Expert]] = {}


def _record_in_worker(task: str, seed: int, env_cfg: EnvConfig, stop_on_success: bool) -> Episode:
    """Runs in a worker process; keeps one environment per task for the worker's lifetime."""
    if task not in _WORKER_ENVS:
        env = make_env(task, env_cfg)
        _WORKER_ENVS[task] = (env, make_expert(env))
    env, expert = _WORKER_ENVS[task]
    return _annotated(record_episode(env, expert, seed, stop_on_success), env)


def _replay_in_worker(trajectory: StateTrajectory, env_cfg: EnvConfig) -> Episode:
    """Runs in a worker process: the episode `record_episode` records for the trajectory's seed, with the
    recorded states rendered by the process's replay env (envs/rlbench_like/mjx/replay.py)."""
    from polyact.envs.rlbench_like.mjx.replay import worker_replay_env

    env = worker_replay_env(trajectory.task, env_cfg)
    episode = Episode(
        task=trajectory.task,
        instruction=trajectory.instruction,
        seed=trajectory.seed,
        success=trajectory.success,
        observations=env.replay(trajectory),
        actions=np.asarray(trajectory.actions, np.float32),
        rewards=np.zeros(len(trajectory.actions), np.float32),  # rlbench_like has no shaped reward
        successes=np.asarray(trajectory.successes, bool),
    )
    return _annotated(episode, env)


def _annotated(episode: Episode, env: PolyactEnv) -> Episode:
    """The episode with its suite's per-episode metadata (keyframes, ...), from the env that recorded it."""
    annotate = suite(env.contract.suite).annotate
    if annotate is not None:
        episode.extra.update(annotate(episode, env))
    return episode


@dataclass
class TaskProgress:
    """Where one task's collection stands; results wait in `pending` until their seed's turn."""

    task: str
    next_seed: int  # the next seed to hand to a worker
    commit_seed: int  # the next seed to commit (all earlier seeds are resolved)
    first_seed: int
    attempts_limit: int  # max_attempts_per_task, or fewer: the seeds there are trajectories of
    kept: int = 0
    successes: int = 0
    in_flight: int = 0
    pending: dict[int, Episode] = field(default_factory=dict)

    @property
    def attempts(self) -> int:
        return self.commit_seed - self.first_seed


@dataclass
class CollectReport:
    path: str
    tasks: list[TaskProgress]
    episodes_per_task: int

    def table(self) -> str:
        rows = [f"{'task':<32} {'kept':>5} {'attempts':>8} {'expert success':>15}"]
        for t in self.tasks:
            rate = 100.0 * t.successes / t.attempts if t.attempts else float("nan")
            rows.append(f"{t.task:<32} {t.kept:>5} {t.attempts:>8} {rate:>14.1f}%")
        attempts = sum(t.attempts for t in self.tasks)
        successes = sum(t.successes for t in self.tasks)
        mean = 100.0 * successes / attempts if attempts else float("nan")
        rows.append(f"{'all':<32} {sum(t.kept for t in self.tasks):>5} {attempts:>8} {mean:>14.1f}%")
        return "\n".join(rows)


def collect(cfg: CollectConfig) -> CollectReport:
    """Fill (or resume filling) the dataset at `cfg.out` with `episodes_per_task` demonstrations per task."""

    _, tasks = resolve_tasks(cfg.env.tasks)
    trajectories = trajectories_to_collect(cfg, tasks) if cfg.trajectories else None
    writer = _open_or_create(cfg, tasks)
    try:
        progress = _resume_state(cfg, tasks, writer.episodes, trajectories)
        _run(cfg, progress, writer, trajectories)
    finally:
        writer.close()
    return CollectReport(str(cfg.out), list(progress.values()), cfg.episodes_per_task)


def _open_or_create(cfg: CollectConfig, tasks: tuple[str, ...]) -> DatasetWriter:
    path = Path(cfg.out)
    if (path / "meta.json").exists():
        writer = DatasetWriter.open(path)
        recorded = writer.metadata.get("collection")
        if recorded != cfg.identity():
            writer.close()
            raise ConfigError(
                f"{path} was collected with settings {recorded}, but this command asks for {cfg.identity()}; "
                "run it with the same settings to resume or extend it, or choose another `out`"
            )
        if writer.storage != cfg.storage():
            warnings.warn(
                f"{path} stores frames with {writer.storage}; the episodes this command adds are stored the same "
                f"way, not with {cfg.storage()} (polyact data convert rewrites a dataset)",
                stacklevel=2,
            )
        return writer
    probe = make_env(tasks[0], cfg.env)
    spec = replace(probe.contract, tasks=tasks)
    probe.close()
    return DatasetWriter.for_spec(path, spec, metadata={"collection": cfg.identity()}, **cfg.storage())


def _resume_state(
    cfg: CollectConfig, tasks: tuple[str, ...], episodes: list[Any], trajectories: Trajectories | None
) -> dict[str, TaskProgress]:
    limits = {t: min(cfg.attempts_limit, len(trajectories[t])) if trajectories else cfg.attempts_limit for t in tasks}
    progress = {t: TaskProgress(t, cfg.seed, cfg.seed, cfg.seed, limits[t]) for t in tasks}
    for ep in episodes:
        p = progress.get(ep.task)
        if p is None:
            continue
        p.kept += 1
        p.successes += int(ep.success)
        p.commit_seed = p.next_seed = max(p.commit_seed, ep.seed + 1)
    return progress


def _wanted(cfg: CollectConfig, p: TaskProgress) -> int:
    """How many more attempts of this task to start now: no more than could still be kept."""
    remaining = cfg.episodes_per_task - p.kept - len([e for e in p.pending.values() if _keep(cfg, e)])
    budget = p.attempts_limit - (p.next_seed - p.first_seed)
    return max(0, min(remaining - p.in_flight, budget))


def _keep(cfg: CollectConfig, episode: Episode) -> bool:
    return episode.success or not cfg.successes_only


def _next_jobs(cfg: CollectConfig, progress: dict[str, TaskProgress], slots: int) -> Iterator[tuple[str, int]]:
    """Round-robin over tasks, so every task advances and the progress bar means something."""
    while slots > 0:
        started = False
        for p in progress.values():
            if slots > 0 and _wanted(cfg, p) > 0:
                yield p.task, p.next_seed
                p.next_seed += 1
                p.in_flight += 1
                slots -= 1
                started = True
        if not started:
            return


def _commit_ready(cfg: CollectConfig, p: TaskProgress, writer: DatasetWriter) -> int:
    """Commit the task's pending results in seed order; returns how many episodes were written."""
    written = 0
    while p.commit_seed in p.pending:
        episode = p.pending.pop(p.commit_seed)
        p.commit_seed += 1
        if p.kept >= cfg.episodes_per_task:
            continue
        p.successes += int(episode.success)
        if _keep(cfg, episode):
            writer.add_episode(episode)
            p.kept += 1
            written += 1
    return written


def _pool(cfg: CollectConfig) -> tuple[ProcessPoolExecutor | RayPool, int]:
    """The worker pool `cfg.runner` names and its size (0 workers: every CPU of this machine or the cluster)."""
    if cfg.runner == "ray":
        pool = RayPool(cfg.ray_address)
        return pool, cfg.workers or pool.cpus
    workers = cfg.workers or os.cpu_count() or 1
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")), workers


def _run(
    cfg: CollectConfig, progress: dict[str, TaskProgress], writer: DatasetWriter, trajectories: Trajectories | None
) -> None:
    pool, workers = _pool(cfg)
    total = cfg.episodes_per_task * len(progress)
    bar = tqdm(
        total=total,
        initial=sum(min(p.kept, cfg.episodes_per_task) for p in progress.values()),
        desc=f"collect {cfg.env.tasks}",
        unit="ep",
        disable=not cfg.progress,
    )
    futures: dict[Future, tuple[str, int]] = {}
    reruns: dict[tuple[str, int], int] = {}  # runner=ray: attempts run again after their worker was lost

    def submit(task: str, seed: int) -> None:
        if trajectories is None:
            job = pool.submit(_record_in_worker, task, seed, cfg.env, cfg.stop_on_success)
        else:
            job = pool.submit(_replay_in_worker, trajectories[task][seed], cfg.env)
        futures[job] = (task, seed)

    with pool:
        try:
            while True:
                for task, seed in _next_jobs(cfg, progress, 2 * workers - len(futures)):
                    submit(task, seed)
                if not futures:
                    break
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for job in done:
                    task, seed = futures.pop(job)
                    p = progress[task]
                    try:
                        p.pending[seed] = job.result()
                    except Exception as err:
                        if isinstance(pool, RayPool) and pool.lost_worker(err):
                            reruns[task, seed] = reruns.get((task, seed), 0) + 1
                            if reruns[task, seed] <= cfg.ray_retries:
                                bar.write(f"retrying {task} seed {seed} (attempt {reruns[task, seed] + 1}): {err}")
                                submit(task, seed)
                                continue
                        raise RuntimeError(f"recording {task} with seed {seed} failed in a worker: {err}") from err
                    p.in_flight -= 1
                    bar.update(_commit_ready(cfg, p, writer))
                attempts = sum(p.attempts for p in progress.values())
                successes = sum(p.successes for p in progress.values())
                retried = {"retried": sum(reruns.values())} if reruns else {}
                bar.set_postfix(
                    attempts=attempts, expert_success=f"{100 * successes / max(attempts, 1):.0f}%", **retried
                )
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            bar.close()


def run(cfg: CollectConfig) -> CollectReport:
    """`polyact collect`: collect, then print each task's kept episodes and expert success."""
    report = collect(cfg)
    print(f"\nscripted demonstrations in {cfg.out}:\n{report.table()}")
    for t in report.tasks:
        if t.kept < cfg.episodes_per_task:
            print(
                f"warning: {t.task} kept {t.kept} of {cfg.episodes_per_task} episodes after {t.attempts} attempts "
                f"(max_attempts_per_task={cfg.attempts_limit}"
                + (f", trajectories of {t.attempts_limit} seeds)" if cfg.trajectories else ")")
            )
    return report

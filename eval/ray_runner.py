"""`runner=ray`: evaluation episodes as calls on Ray actors, spread over whatever cluster Ray reaches.

Each actor (`EpisodeWorker`) is one worker process holding what a local worker holds, an `EvalEnv`
(the episode end, video frames and the scripted expert), plus the policy when it runs in the worker.
It rolls one episode out per call with `run_episodes`, the loop the local runner uses, on a vector of
one environment in its own process; so the two runners share the rollout code and give the same
episodes for the same seeds. Actors live for the whole run, so an environment is built once per task
an actor meets, not once per episode; like the local workers they keep to one task while it has
episodes left (`JobQueue`).

The driver hands out one episode at a time per actor and records each result the moment it arrives,
through the same `on_finished` as the local runner (video first, then the fsynced line), so a killed
driver resumes from `episodes.jsonl` with nothing finished run again. A lost actor (its process or
node died) is replaced by a new one and its episode is run again from the start, at most
`ray_retries` times per episode; every retry is reported (progress view, results.json). When a lost
node leaves no free CPU for the replacement, it waits for one: each actor is stopped as soon as no
episode is left for it, so the replacement starts, at the latest, when the others run out of work.
An episode that raises is an error, never retried: it would fail the same way again; so is a worker
whose start raises (a checkpoint missing on its node, a policy server it cannot reach).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from polyact.errors import PolyactError
from polyact.eval.config import EvalConfig
from polyact.eval.episodes import EpisodeJob
from polyact.eval.policy import BatchPolicy
from polyact.eval.rollout import JobQueue, OnFinished, RolloutStats, run_episodes, start_tasks
from polyact.eval.store import EpisodeResult
from polyact.runners import connect_ray

START_HINT = (
    "; every node needs the same polyact install, a checkpoint at the same path, and a served policy's "
    "URL reachable from it (`polyact serve host=0.0.0.0`), see docs/eval.md"
)


class EpisodeWorker:
    """One environment (and an in-worker policy) in a Ray worker process; `run` rolls one episode out."""

    def __init__(self, cfg: EvalConfig, first_task: str, make_policy: Callable[[], BatchPolicy] | None = None):
        from polyact.envs.vector import vector_env
        from polyact.eval.run import policy_for_eval
        from polyact.eval.worker import EvalEnv

        env_fn = partial(EvalEnv, cfg.env, first_task, cfg.policy == "expert")
        self.vec = vector_env([env_fn], asynchronous=False, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
        self.policy = make_policy() if make_policy is not None else policy_for_eval(cfg, 1)

    def run(self, job: EpisodeJob, record: bool) -> tuple[EpisodeResult, np.ndarray | None]:
        """The episode `job`, and its first camera's frames (T + 1, H, W, 3) when `record`."""
        finished: list[tuple[EpisodeResult, np.ndarray | None]] = []
        run_episodes(self.vec, self.policy, [job], lambda r, f: finished.append((r, f)), lambda _: record)
        return finished[0]


@dataclass
class Retry:
    """An episode run again because its worker was lost."""

    task: str
    index: int
    attempt: int  # 1 = the first rerun
    reason: str


@dataclass
class RayRolloutStats:
    stats: RolloutStats
    workers: int
    restarts: int  # actors replaced after their process (or node) was lost
    retries: list[Retry] = field(default_factory=list)


class Observer:
    """What the driver tells a progress view (eval/ray_progress.py); all no-ops here."""

    def started(self, workers: int) -> None: ...

    def finished(self, result: EpisodeResult) -> None: ...

    def retried(self, retry: Retry) -> None: ...


def roll_out_on_ray(
    cfg: EvalConfig,
    jobs: Sequence[EpisodeJob],
    on_finished: OnFinished,
    record: Callable[[EpisodeJob], bool],
    observer: Observer | None = None,
    make_policy: Callable[[], BatchPolicy] | None = None,
) -> RayRolloutStats:
    """Run every job once on Ray actors (one per worker: `cfg.workers`, 0 = the cluster's CPUs).

    `make_policy` builds each actor's one-slot policy in the actor (picklable, e.g. a partial of
    deploy/served_slots.py's `ServedSlots` for the served placement); None: `cfg.policy` in the worker.
    """
    observer = observer or Observer()
    ray = connect_ray(cfg.ray_address)
    start_time = time.perf_counter()
    workers = min(cfg.workers or max(1, int(ray.cluster_resources().get("CPU", 1))), len(jobs))
    # restarts are the driver's, not Ray's (max_restarts): a call to an actor that Ray is restarting
    # fails at once, while a call to a new actor waits for it to start
    actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(EpisodeWorker)
    current = start_tasks(jobs, workers)
    actors = [actor_class.remote(cfg, task, make_policy) for task in current]
    restarts = 0
    queue = JobQueue(jobs)
    in_flight: dict[Any, tuple[int, EpisodeJob]] = {}
    reruns: dict[tuple[str, int], int] = {}
    retries: list[Retry] = []
    episodes = env_steps = 0

    def submit(i: int, job: EpisodeJob | None = None) -> None:
        job = job or queue.next(current[i])
        if job is None:  # nothing left for it: its CPU goes to a replacement still waiting for one
            ray.kill(actors[i])
            return
        current[i] = job.task
        in_flight[actors[i].run.remote(job, record(job))] = (i, job)

    observer.started(workers)
    try:
        for i in range(workers):
            submit(i)
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            i, job = in_flight.pop(ref)
            try:
                result, frames = ray.get(ref)
            except ray.exceptions.RayActorError as err:
                if err.actor_init_failed:  # its environment or policy raised: every worker would
                    raise PolyactError(f"worker {i} could not start: {_last_line(err)}{START_HINT}") from None
                key = (job.task, job.index)
                reruns[key] = reruns.get(key, 0) + 1
                reason = f"worker {i} lost ({type(err).__name__}), replaced"
                if reruns[key] > cfg.ray_retries:
                    raise PolyactError(
                        f"episode {job.index} of {job.task} lost its worker {reruns[key]} times "
                        f"(ray_retries={cfg.ray_retries}); last: {err}"
                    ) from None
                retry = Retry(job.task, job.index, reruns[key], reason)
                retries.append(retry)
                observer.retried(retry)
                ray.kill(actors[i])
                actors[i] = actor_class.remote(cfg, job.task, make_policy)
                restarts += 1
                submit(i, job)
                continue
            except ray.exceptions.RayTaskError as err:
                raise RuntimeError(f"episode {job.index} of {job.task} failed in worker {i}") from err
            on_finished(result, frames)
            observer.finished(result)
            episodes += 1
            env_steps += result.length
            submit(i)
    finally:
        for actor in actors:
            ray.kill(actor)
    stats = RolloutStats(episodes, env_steps, env_steps, time.perf_counter() - start_time)
    return RayRolloutStats(stats, workers, restarts, retries)


def _last_line(err: BaseException) -> str:
    """The exception a worker's start raised, as `Type: message` (the last line of Ray's report)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__

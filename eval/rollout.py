"""Parallel rollouts: N worker environments, one batched policy call per control step.

Episodes are scheduled here, not by gymnasium's autoreset (the vector env runs with autoreset
DISABLED): when a worker's episode ends, its next job is started in that slot with its own seed and
options, and once no job is left the slot is parked (`idle`). So every job runs exactly once, whatever
order workers finish in, and every episode starts from the state its job names.

A worker keeps to one task while that task has episodes left (`JobQueue`), starting spread over the
tasks: building a task's environment takes about a second and a reset holds up every worker, so N
workers on T tasks build about T + N environments instead of N x T.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from polyact.envs.vector import reset_envs, split_infos
from polyact.errors import ContractError
from polyact.eval.episodes import EpisodeJob
from polyact.eval.policy import BatchPolicy, select_rows
from polyact.eval.store import EpisodeResult

# (the finished episode, its first camera's frames (T + 1, H, W, 3) if it was recorded)
OnFinished = Callable[[EpisodeResult, np.ndarray | None], None]


def start_tasks(jobs: Sequence[EpisodeJob], n: int) -> list[str]:
    """The task each of n workers starts on: spread evenly over the tasks that have jobs."""
    tasks = list(dict.fromkeys(job.task for job in jobs))
    return [tasks[i * len(tasks) // n] for i in range(n)]


class JobQueue:
    """The jobs left, handed to a worker from its current task first, else from the task with the
    most jobs left (the earliest such task on ties); within a task in episode order."""

    def __init__(self, jobs: Iterable[EpisodeJob]):
        self._by_task: dict[str, deque[EpisodeJob]] = {}
        for job in jobs:
            self._by_task.setdefault(job.task, deque()).append(job)

    def next(self, task: str) -> EpisodeJob | None:
        if not self._by_task.get(task):
            left = [t for t, q in self._by_task.items() if q]
            if not left:
                return None
            task = max(left, key=lambda t: len(self._by_task[t]))
        return self._by_task[task].popleft()


@dataclass(frozen=True)
class RolloutStats:
    episodes: int
    env_steps: int
    policy_calls: int
    wall_time_s: float


def run_episodes(
    vec: gym.vector.VectorEnv,
    policy: BatchPolicy,
    jobs: Sequence[EpisodeJob],
    on_finished: OnFinished,
    record: Callable[[EpisodeJob], bool] = lambda job: False,
) -> RolloutStats:
    """Run every job once on `vec` (a vector of EvalEnv workers built on `start_tasks(jobs, n)`)
    under `policy`. `record(job)` decides at the episode's start whether its worker keeps video frames.
    """
    start_time = time.perf_counter()
    n = vec.num_envs
    action_dim = int(vec.single_action_space.shape[0])
    queue = JobQueue(jobs)
    current = start_tasks(jobs, n)  # each worker's task
    slots: list[EpisodeJob | None] = [None] * n
    lengths = [0] * n
    infos: list[dict] = [{} for _ in range(n)]
    obs: dict = {}
    env_steps = policy_calls = episodes = 0

    def start(free: Sequence[int]) -> None:
        """A new episode in each free slot, or parking where the queue has run dry."""
        nonlocal obs
        requests: dict[int, tuple[int | None, dict]] = {}
        for i in free:
            job = queue.next(current[i])
            if job is not None:
                slots[i], lengths[i], current[i] = job, 0, job.task
                requests[i] = (job.seed, {**job.reset_options(), "record": record(job)})
            else:
                requests[i] = (None, {"idle": True})
        if requests:
            obs, reset_infos = reset_envs(vec, requests)
            started = [i for i in requests if slots[i] is not None]
            for i in started:
                infos[i] = reset_infos[i]
            if started:
                policy.reset(started)

    start(range(n))
    while live := [i for i, job in enumerate(slots) if job is not None]:
        batch = np.asarray(policy.act(select_rows(obs, live), [infos[i] for i in live], live))
        policy_calls += 1
        if batch.shape != (len(live), action_dim):
            raise ContractError(
                f"policy.act returned shape {batch.shape} for {len(live)} environments; "
                f"expected ({len(live)}, {action_dim})"
            )
        actions = np.zeros((n, action_dim), np.float32)
        actions[live] = batch
        obs, _, terminated, truncated, step_infos = vec.step(actions)
        infos = split_infos(step_infos, n)
        env_steps += len(live)
        ended = []
        for i in live:
            lengths[i] += 1
            if terminated[i] or truncated[i]:
                job, slots[i] = slots[i], None
                recording = infos[i].get("recording")
                result = EpisodeResult(
                    task=job.task,
                    index=job.index,
                    seed=job.seed,
                    success=bool(infos[i]["success"]),
                    length=lengths[i],
                    instruction=str(obs["instruction"][i]),
                    goal_vector=job.goal_vector,
                )
                on_finished(result, recording.frames if recording is not None else None)
                episodes += 1
                ended.append(i)
        start(ended)
    return RolloutStats(episodes, env_steps, policy_calls, time.perf_counter() - start_time)

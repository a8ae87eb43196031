"""Which episodes an evaluation runs: (task, index) with its seed and, optionally, metaworld's goal.

Seeds are fixed and disjoint from training: episode i of every task starts from seed
EVAL_SEED_BASE + i, and demonstrations are collected below EVAL_SEED_BASE (polyact collect refuses
higher seeds). Under `protocol=lerobot` episode i starts from LeRobot's seed 1000 + i instead (its
`EvalPipelineConfig.seed`); `check_disjoint` verifies for a given dataset that no evaluation episode
starts where a demonstration did.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from polyact.envs.config import EVAL_SEED_BASE
from polyact.errors import ConfigError


@dataclass(frozen=True)
class EpisodeJob:
    """One evaluation episode: episode `index` of `task`."""

    task: str
    index: int
    seed: int
    goal_vector: tuple[float, ...] | None = None  # metaworld's rand_vec, when protocol=metaworld_goals

    def reset_options(self) -> dict[str, object]:
        options: dict[str, object] = {"task": self.task}
        if self.goal_vector is not None:
            options["goal_vector"] = np.asarray(self.goal_vector)
        return options


LEROBOT_FIRST_SEED = 1000  # lerobot src/lerobot/configs/eval.py:39; seeds run on, lerobot_eval.py:531-532


def eval_seed(index: int, protocol: str = "seeds") -> int:
    """The seed episode `index` of every task starts from."""
    return (LEROBOT_FIRST_SEED if protocol == "lerobot" else EVAL_SEED_BASE) + index


def official_goal_vectors(task: str, seed: int) -> np.ndarray:
    """metaworld's 50 goal configurations of `task`, (50, D): the `rand_vec`s that
    `metaworld.MT1(task, seed).train_tasks` pickles, i.e. what its benchmarks evaluate."""
    import metaworld

    benchmark = metaworld.MT1(task, seed=seed)
    return np.stack([np.asarray(pickle.loads(t.data)["rand_vec"], np.float64) for t in benchmark.train_tasks])


def plan_jobs(
    tasks: Iterable[str], episodes_per_task: int, protocol: str, goal_seed: int, done: set[tuple[str, int]]
) -> list[EpisodeJob]:
    """The episodes still to run, task by task in episode order; goal vectors are computed only for
    tasks with episodes left."""
    jobs = []
    for task in tasks:
        todo = [i for i in range(episodes_per_task) if (task, i) not in done]
        if not todo:
            continue
        goals = official_goal_vectors(task, goal_seed) if protocol == "metaworld_goals" else None
        for i in todo:
            goal = tuple(float(x) for x in goals[i]) if goals is not None else None
            jobs.append(EpisodeJob(task, i, eval_seed(i, protocol), goal))
    return jobs


def check_disjoint(dataset_path: str, tasks: Iterable[str], episodes_per_task: int, protocol: str = "seeds") -> None:
    """Raise ConfigError if the dataset holds an episode of an evaluated task with an evaluation seed.

    Seeds are compared per task: the same seed of another task is another initial state.
    """
    from polyact.data import open_dataset

    eval_seeds = {eval_seed(i, protocol) for i in range(episodes_per_task)}
    tasks = set(tasks)
    with open_dataset(dataset_path) as ds:
        clashes = sorted((e.task, e.seed) for e in ds.episodes if e.task in tasks and e.seed in eval_seeds)
    if clashes:
        shown = ", ".join(f"{t} seed {s}" for t, s in clashes[:10])
        raise ConfigError(
            f"train_dataset {dataset_path} holds {len(clashes)} episode(s) that evaluation would start from "
            f"({shown}{', ...' if len(clashes) > 10 else ''}): evaluation seeds are {eval_seed(0, protocol)}.."
            f"{eval_seed(episodes_per_task - 1, protocol)}, so results would measure memorisation. "
            f"Collect demonstrations with other seeds"
        )

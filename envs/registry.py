"""Every suite's task sets and tasks by name, and the factories for their environments and experts.

A suite is a module exposing `SUITE: Suite`; it is imported only when one of its tasks is used, so
using one suite never pays for loading another.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from polyact.envs.base import PolyactEnv
from polyact.envs.config import EnvConfig
from polyact.errors import unknown_name


class Expert(Protocol):
    """A scripted demonstrator: reads the observation and the step info (with its privileged state)."""

    def reset(self) -> None: ...

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray: ...


@dataclass(frozen=True)
class Suite:
    """A family of tasks sharing one robot, camera set and action space.

    `annotate` (optional) adds suite-specific per-episode metadata when a demonstration is recorded
    (e.g. keyframe indices); it gets the Episode and returns a JSON-serialisable dict.
    """

    name: str
    task_sets: dict[str, tuple[str, ...]]
    tasks: tuple[str, ...]
    make_env: Callable[[str, EnvConfig], PolyactEnv]
    make_expert: Callable[[PolyactEnv], Expert]
    cameras: tuple[str, ...] = ()
    annotate: Callable[[Any], dict[str, Any]] | None = None


SUITE_MODULES = {
    "metaworld": "polyact.envs.metaworld",
    "rlbench_like": "polyact.envs.rlbench_like",
}


def suite(name: str) -> Suite:
    if name not in SUITE_MODULES:
        raise unknown_name("suite", name, SUITE_MODULES)
    return importlib.import_module(SUITE_MODULES[name]).SUITE


def all_suites() -> list[Suite]:
    return [suite(name) for name in SUITE_MODULES]


def resolve_tasks(name: str) -> tuple[Suite, tuple[str, ...]]:
    """The suite and tasks of a task-set name (`MT10`) or of a single task (`reach-v3`)."""
    suites = all_suites()
    for s in suites:
        if name in s.task_sets:
            return s, s.task_sets[name]
        if name in s.tasks:
            return s, (name,)
    valid = [n for s in suites for n in (*s.task_sets, *s.tasks)]
    raise unknown_name("task or task set (env.tasks)", name, valid)


def make_env(task: str, cfg: EnvConfig | None = None) -> PolyactEnv:
    """An environment for one task, configured by `cfg` (cameras, resolution, rendering)."""
    s, tasks = resolve_tasks(task)
    if len(tasks) != 1 or tasks[0] != task:
        raise unknown_name("single task", task, s.tasks)
    return s.make_env(task, cfg or EnvConfig())


def make_expert(env: PolyactEnv) -> Expert:
    """The suite's scripted expert for the environment's task."""
    return suite(env.contract.suite).make_expert(env)

"""The factories of every suite's environments and scripted experts.

A suite is a module exposing `SUITE: Suite` (named in envs/catalog.py); it is imported only when one of
its environments or experts is built, so checking names never loads a simulator and using one suite
never pays for loading another.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from polyact.envs.catalog import SUITES, resolve_tasks, suite_info
from polyact.envs.config import EnvConfig
from polyact.errors import unknown_name

if TYPE_CHECKING:
    import numpy as np

    from polyact.contract import EnvSpec
    from polyact.envs.base import PolyactEnv


class Expert(Protocol):
    """A scripted demonstrator: reads the observation and the step info (with its privileged state)."""

    def reset(self) -> None: ...

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray: ...


@dataclass(frozen=True)
class Suite:
    """A family of tasks sharing one robot, camera set and action space.

    Its names must equal its entry in envs/catalog.py (tests/envs/test_catalog.py checks). `annotate`
    (optional) adds suite-specific per-episode metadata when a demonstration is recorded (e.g. keyframe
    indices); it gets the Episode and the env that recorded it (still holding that episode's state) and
    returns a JSON-serialisable dict. `keyframe_transitions` and
    `keyframe_spec` (optional, both or neither) turn dense demonstrations into keyframe-action ones
    (envs/rlbench_like/keyframe_actions.py has their contract).
    """

    name: str
    task_sets: dict[str, tuple[str, ...]]
    tasks: tuple[str, ...]
    make_env: Callable[[str, EnvConfig], PolyactEnv]
    make_expert: Callable[[PolyactEnv], Expert]
    cameras: tuple[str, ...] = ()
    annotate: Callable[[Any, Any], dict[str, Any]] | None = None
    keyframe_transitions: Callable[..., Any] | None = None
    keyframe_spec: Callable[[EnvSpec], EnvSpec] | None = None


def suite(name: str) -> Suite:
    """The suite's factories; imports its simulator."""
    return importlib.import_module(suite_info(name).module).SUITE


def all_suites() -> list[Suite]:
    """Every suite's factories; imports every simulator (names alone are in envs/catalog.py)."""
    return [suite(name) for name in SUITES]


def make_env(task: str, cfg: EnvConfig | None = None) -> PolyactEnv:
    """An environment for one task, configured by `cfg` (cameras, resolution, rendering)."""
    info, tasks = resolve_tasks(task)
    if len(tasks) != 1 or tasks[0] != task:
        raise unknown_name("single task", task, info.tasks)
    return suite(info.name).make_env(task, cfg or EnvConfig())


def make_expert(env: PolyactEnv) -> Expert:
    """The suite's scripted expert for the environment's task."""
    return suite(env.contract.suite).make_expert(env)

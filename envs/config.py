"""The environment part of every command's config: which tasks, which cameras, how to render."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from polyact.envs.catalog import QUALITIES, SUITES, resolve_tasks
from polyact.errors import ConfigError, unknown_name

EVAL_SEED_BASE = 1_000_000
"""Evaluation episodes use seeds from here up and demonstrations stay below, so that no evaluation
episode starts from a state a policy was trained on."""


@dataclass
class EnvConfig:
    """Environment settings shared by collection, evaluation and deployment.

    `tasks` names a task set of a suite (`MT10`, `MT50`, `ML10-train`, `ML45-test`, ... for Meta-World)
    or a single task (`reach-v3`); `polyact tasks` lists them all (envs/catalog.py). Empty `cameras` or
    a zero `max_episode_steps` mean the suite's default.

    `goal` puts the task's goal vector in every observation (`goal`, Meta-World's target position). It is
    privileged: for drawers, doors and windows it is a fixed offset from the object, so it gives the
    object's position away. `goal=false` withholds it (cameras + proprioception only), as the published
    image-based Meta-World results do (docs/eval.md); a dataset, and a policy trained on it, record which.

    `subgoal_oracle` (rlbench_like, keyframe mode) adds `subgoal` to every observation: the next sub-goal
    of the scripted expert's demonstration of the same seed, for sub-goal conditioned policies
    (envs/rlbench_like/subgoal_oracle.py).

    `task_state` (rlbench_like) appends every prop's pose to the `state` vector, as RLBench's
    `task_low_dim_state`: privileged, for policies that read no camera (envs/rlbench_like/task_state.py).
    """

    tasks: str = "MT10"
    cameras: list[str] = field(default_factory=list)
    height: int = 128
    width: int = 128
    render_quality: str = "fast"
    max_episode_steps: int = 0
    action_mode: str = "default"
    goal: bool = True  # observe the privileged goal vector; false: cameras + proprioception only
    subgoal_oracle: bool = False  # observe the expert's next sub-goal (rlbench_like keyframe mode)
    task_state: bool = False  # the props' poses in the state vector (rlbench_like; privileged)

    def __post_init__(self) -> None:
        suite, _ = resolve_tasks(self.tasks)
        for cam in self.cameras:
            if suite.cameras and cam not in suite.cameras:
                raise unknown_name(f"{suite.name} camera (env.cameras)", cam, suite.cameras)
        if self.render_quality not in QUALITIES:
            raise unknown_name("render quality (env.render_quality)", self.render_quality, QUALITIES)
        if self.height < 8 or self.width < 8:
            raise ConfigError(f"env.height and env.width must be at least 8 pixels, got {self.height}x{self.width}")
        if self.max_episode_steps < 0:
            raise ConfigError(
                f"env.max_episode_steps must be >= 0 (0 = the suite's default), got {self.max_episode_steps}"
            )
        if self.subgoal_oracle and not suite.subgoal_oracle:
            having = [s.name for s in SUITES.values() if s.subgoal_oracle]
            raise ConfigError(
                f"env.subgoal_oracle: suite {suite.name} has no sub-goal oracle (suites with one: {having})"
            )
        if self.task_state and not suite.task_state:
            having = [s.name for s in SUITES.values() if s.task_state]
            raise ConfigError(f"env.task_state: suite {suite.name} has no task state (suites with one: {having})")
        if self.subgoal_oracle and self.action_mode != "keyframe":
            raise ConfigError(
                "env.subgoal_oracle gives keyframe policies their next sub-goal: set env.action_mode=keyframe "
                f"(got {self.action_mode!r})"
            )

    def identity(self) -> dict[str, Any]:
        """The settings as run directories and datasets record them; `subgoal_oracle` and `task_state` only
        when on, so that those recorded before they existed still resume."""
        settings = asdict(self)
        for optional in ("subgoal_oracle", "task_state"):
            if not settings[optional]:
                del settings[optional]
        return settings

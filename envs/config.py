"""The environment part of every command's config: which tasks, which cameras, how to render."""

from __future__ import annotations

from dataclasses import dataclass, field

from polyact.envs.catalog import QUALITIES, resolve_tasks
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
    """

    tasks: str = "MT10"
    cameras: list[str] = field(default_factory=list)
    height: int = 128
    width: int = 128
    render_quality: str = "fast"
    max_episode_steps: int = 0
    action_mode: str = "default"
    goal: bool = True  # observe the privileged goal vector; false: cameras + proprioception only

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

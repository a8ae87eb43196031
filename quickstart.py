"""The main job on embedded defaults, with no server and no download.

Today: collect scripted MT10 demonstrations in parallel and summarise the dataset. The policy and
evaluation stages join it as they land (issues 3 and 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from polyact.data.collect import CollectConfig
from polyact.data.collect import run as run_collect
from polyact.envs.config import EnvConfig


def _demo_defaults() -> CollectConfig:
    return CollectConfig(out="runs/quickstart/demos", env=EnvConfig(tasks="MT10"), episodes_per_task=5)


@dataclass
class QuickstartConfig:
    """`polyact quickstart`: MT10 demonstrations into runs/quickstart/demos, then a dataset summary."""

    collect: CollectConfig = field(default_factory=_demo_defaults)


def run(cfg: QuickstartConfig) -> None:
    from polyact.data import format_info

    run_collect(cfg.collect)
    print()
    print(format_info(cfg.collect.out))

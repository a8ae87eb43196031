"""Fine-tuning: a trained policy as the starting point on a new dataset (another task set, robot or scene).

`polyact train init=POLICY_DIR dataset=NEW` keeps the policy's architecture and weights and takes from the
new dataset what describes it: the normalisation statistics (and with them the heatmap search box), the
adaptive grid's bins re-fitted onto the new actions, and the environment spec the policy will act in.
Cameras are matched by name. What cannot carry over (a missing camera, another resolution, action or
state size) is refused before any step, with every mismatch named; new instruction words that a
word-vocabulary encoder never saw are reported, since they read as its unknown token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from polyact.data import EpisodeDataset
from polyact.errors import ConfigError
from polyact.policies import VLAPolicy
from polyact.policies.language import split_words


def _mismatches(policy: VLAPolicy, dataset: EpisodeDataset) -> list[str]:
    cfg, spec = policy.config, dataset.env_spec
    problems = []
    missing = [c for c in cfg.cameras if c not in spec.camera_names]
    if missing:
        problems.append(f"cameras {missing} are not in the dataset, which has {list(spec.camera_names)}")
    for camera in spec.cameras:
        if camera.name in cfg.cameras and (camera.height, camera.width) != (cfg.image_height, cfg.image_width):
            problems.append(
                f"camera {camera.name!r} is {camera.height}x{camera.width}, the policy reads "
                f"{cfg.image_height}x{cfg.image_width}"
            )
    sizes = [
        ("action", cfg.action_dim, spec.action.dim),
        ("state", cfg.state_dim, len(spec.state_names)),
    ]
    if cfg.goal_dim:  # a goal-free policy ignores the goal vector of any dataset
        sizes.append(("goal", cfg.goal_dim, len(spec.goal_names)))
    problems += [f"{name} size {ours} against the dataset's {theirs}" for name, ours, theirs in sizes if ours != theirs]
    return problems


def unknown_words(policy: VLAPolicy, instructions: list[str]) -> list[str]:
    """Words of `instructions` outside a word-vocabulary policy's vocabulary (none for other encoders)."""
    if policy.config.text.encoder != "words":
        return []
    vocab = set(policy.config.text.vocab)
    return sorted({w for text in instructions for w in split_words(text)} - vocab)


def policy_for_dataset(
    policy: VLAPolicy,
    dataset: EpisodeDataset,
    stats: Mapping[str, Mapping[str, Any]],
    action_samples: np.ndarray | None,
    init: str | Path = "the policy",
) -> VLAPolicy:
    """`policy` (loaded from `init`) made ready to train on `dataset` with its statistics `stats` (see the
    module doc); `action_samples` are the raw actions an adaptive grid is re-fitted on (None for other heads)."""
    if dataset.env_spec is None:
        raise ConfigError(f"{dataset.path} has no environment spec; record it with `polyact collect`")
    problems = _mismatches(policy, dataset)
    if problems:
        raise ConfigError(f"cannot fine-tune {init} on {dataset.path}: " + "; ".join(problems))
    policy.adapt_to_dataset(stats, action_samples if policy.head.fits_to_data else None)
    spec = dataset.env_spec
    if not policy.config.goal_dim and spec.goal_names:  # as build_policy: a goal-free policy acts without it
        spec = dataclasses.replace(spec, goal_names=(), notes={k: v for k, v in spec.notes.items() if k != "goal"})
    policy.env_spec = spec
    return policy.train()

"""`polyact data keyframes`: a keyframe-action dataset from a dataset of dense demonstrations.

One collection serves both action modes: each dense episode becomes one keyframe episode whose steps
are the observations at the start and at every keyframe (plus every n-th step in between with
`every_n`, PerAct's demo augmentation), each labelled with the next keyframe's pose and gripper state.
The keyframes are the ones the collector stored (`extra["keyframes"]`) or, for a dataset without them,
found again by the suite's heuristic. The output is an ordinary dataset (crash-safe, resumable: the same
command continues after the last converted episode) whose contract is the suite's keyframe mode, so
`polyact train` and `polyact eval env.action_mode=keyframe` take it as they take any other.

Demonstrations that record GravMAD's sub-goal keyframes (`extra["subgoals"]`, rlbench_like's collector)
also give every sample a `subgoal` feature: the keyframe action of its next sub-goal, what sub-goal
conditioned policies read and sub-goal predictors learn (`policy.subgoal_conditioning`, `target=subgoal`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyact.contract import SUBGOAL_KEY, FeatureSpec
from polyact.data import DatasetWriter, Episode, EpisodeDataset
from polyact.data.recode import rewrite_episodes
from polyact.envs.registry import suite
from polyact.errors import ConfigError, DatasetError


@dataclass
class KeyframeDataConfig:
    """`polyact data keyframes src=DENSE_DATASET out=NEW_DIR [every_n=0]`.

    every_n: also keep every n-th step between keyframes, labelled with the keyframe that follows it
    (PerAct uses 10); 0 keeps only the start and the keyframes.
    """

    src: str = ""
    out: str = ""
    every_n: int = 0

    def __post_init__(self) -> None:
        if not self.src or not self.out:
            raise ConfigError("polyact data keyframes needs src=DENSE_DATASET and out=NEW_DIRECTORY")
        if Path(self.src).resolve() == Path(self.out).resolve():
            raise ConfigError(f"out must be a new directory, not the source {self.src}")
        if self.every_n < 0:
            raise ConfigError(f"every_n must be >= 0 (0 = keyframes only), got {self.every_n}")


def keyframe_episode(episode: Episode, transitions_fn: Callable[..., Any], every_n: int = 0) -> Episode:
    """The keyframe episode of one dense episode (see the module doc); `transitions_fn` is the suite's
    `keyframe_transitions` (its contract: envs/rlbench_like/keyframe_actions.py)."""
    from polyact.envs.rlbench_like.subgoals import subgoal_labels  # the suite is loaded by now (transitions_fn)

    kf = transitions_fn(episode.observations["state"], episode.actions, episode.extra.get("keyframes"), every_n)
    steps, targets = kf.steps, kf.targets
    observations = {key: value[steps] for key, value in episode.observations.items()}
    observations["state"] = kf.states.astype(np.float32)
    if "subgoals" in episode.extra:
        observations[SUBGOAL_KEY] = subgoal_labels(steps, targets, kf.actions, episode.extra["subgoals"])
    return Episode(
        task=episode.task,
        instruction=episode.instruction,
        seed=episode.seed,
        success=episode.success,
        observations=observations,
        actions=kf.actions.astype(np.float32),
        rewards=episode.rewards[targets],  # the step at the keyframe pose: its success is the pose's
        successes=episode.successes[targets],
        extra={
            **{k: v for k, v in episode.extra.items() if k != "keyframes"},
            "dense_steps": [int(s) for s in steps],
            "dense_keyframes": [int(t) for t in np.unique(targets)],
        },
    )


def _keyframe_suite(source: EpisodeDataset) -> Any:
    """The suite of a dense dataset, refusing one without a keyframe mode or already in it."""
    spec = source.env_spec
    if spec is None:
        raise DatasetError(f"{source.path} records no environment spec, so its suite and action mode are unknown")
    chosen = suite(spec.suite)
    if chosen.keyframe_transitions is None or chosen.keyframe_spec is None:
        raise DatasetError(f"suite {spec.suite} has no keyframe action mode (rlbench_like has)")
    if spec.notes.get("action_mode", "default") == "keyframe":
        raise DatasetError(f"{source.path} already holds keyframe actions")
    return chosen


def _provenance(source: EpisodeDataset, every_n: int) -> dict[str, Any]:
    return {"source": str(Path(source.path).resolve()), "every_n": every_n}


def keyframe_writer(source: EpisodeDataset, out: Path, every_n: int) -> DatasetWriter:
    """A new keyframe dataset at `out` for the episodes of `source`: the suite's keyframe contract, and the
    `subgoal` feature when the demonstrations record sub-goals (all of them, or none may)."""
    spec = _keyframe_suite(source).keyframe_spec(source.env_spec)
    features = spec.features()
    with_subgoals = [("subgoals" in e.extra) for e in source.episodes]
    if any(with_subgoals) and not all(with_subgoals):
        raise DatasetError(
            f"{source.path}: {with_subgoals.count(False)} of {len(with_subgoals)} episodes record no sub-goals; "
            "the keyframe dataset's `subgoal` feature needs them in every episode or in none"
        )
    if any(with_subgoals):
        features[SUBGOAL_KEY] = FeatureSpec("float32", spec.action_feature().shape)
    metadata = {**source.metadata, "keyframes_from": _provenance(source, every_n)}
    return DatasetWriter.for_spec(out, spec, source.tasks, features, metadata=metadata, **source.storage)


def convert(cfg: KeyframeDataConfig) -> Path:
    """Write the keyframe episode of every episode of `cfg.src` not yet in `cfg.out`."""
    source = EpisodeDataset(cfg.src)
    chosen = _keyframe_suite(source)

    def transform(episode: Episode) -> Episode:
        return keyframe_episode(episode, chosen.keyframe_transitions, cfg.every_n)

    return rewrite_episodes(
        source,
        Path(cfg.out),
        "keyframes_from",
        _provenance(source, cfg.every_n),
        lambda out: keyframe_writer(source, out, cfg.every_n),
        transform,
        "keyframe conversion",
    )


def run(cfg: KeyframeDataConfig) -> Path:
    """`polyact data keyframes`: convert, then say how many transitions each episode gave."""
    out = convert(cfg)
    dense, keyed = EpisodeDataset(cfg.src), EpisodeDataset(out)
    print(
        f"{out}: {len(keyed)} episodes, {keyed.num_steps} keyframe transitions "
        f"({keyed.num_steps / max(len(keyed), 1):.1f} an episode) from {dense.num_steps} dense steps"
    )
    return out

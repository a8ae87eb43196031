"""Small synthetic datasets on real disk: two 16x16 cameras, seeded random data, varying lengths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from polyact.contract import EnvSpec
from polyact.data import DatasetWriter, Episode
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode

LENGTHS = (7, 1, 12, 5, 9, 3)  # includes a one-step episode


@pytest.fixture
def spec() -> EnvSpec:
    return synthetic_env_spec()


@pytest.fixture
def make_episode(spec: EnvSpec) -> Callable[..., Episode]:
    def make(length: int, seed: int, **kwargs) -> Episode:
        return synthetic_episode(spec, length, seed=seed, **kwargs)

    return make


@pytest.fixture
def create_writer(spec: EnvSpec) -> Callable[..., DatasetWriter]:
    def create(path: Path, **kwargs) -> DatasetWriter:
        options = {
            "features": spec.features(),
            "action": spec.action_feature(),
            "env_spec": spec,
            "fps": spec.control_hz,
            "tasks": {t: [] for t in spec.tasks},
            "metadata": {"collection": {"seed": 0, "cameras": ["corner", "wrist"]}},
        }
        return DatasetWriter.create(path, **{**options, **kwargs})

    return create


@pytest.fixture
def dataset(tmp_path: Path, create_writer, make_episode) -> tuple[Path, list[Episode]]:
    """A closed dataset of len(LENGTHS) episodes (seeds 0..5) and the episodes written to it."""
    path = tmp_path / "ds"
    episodes = [make_episode(length, seed) for seed, length in enumerate(LENGTHS)]
    with create_writer(path) as writer:
        for episode in episodes:
            writer.add_episode(episode)
    return path, episodes


def same_episode(got: Episode, want: Episode) -> None:
    """Assert two episodes are equal in every field and array, dtypes and shapes included."""
    assert (got.task, got.instruction, got.seed, got.success, got.extra) == (
        want.task,
        want.instruction,
        want.seed,
        want.success,
        want.extra,
    )
    assert sorted(got.observations) == sorted(want.observations)
    for key, values in want.observations.items():
        assert (got.observations[key].dtype, got.observations[key].shape) == (values.dtype, values.shape), key
        np.testing.assert_array_equal(got.observations[key], values, err_msg=key)
    for name in ("actions", "rewards", "successes"):
        assert getattr(got, name).dtype == getattr(want, name).dtype, name
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


@pytest.fixture
def assert_same_episode() -> Callable[[Episode, Episode], None]:
    return same_episode

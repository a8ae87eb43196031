"""Dataset statistics: exact moments against numpy, quantiles within the sketch's error, merging = one shot."""

from __future__ import annotations

import json
import pickle

import h5py
import numpy as np
import pytest

from polyact.data import EpisodeDataset
from polyact.data.stats import RANK_ERROR, FeatureStats, merge_into, stats_from_dict


def concatenated(episodes, key):
    if key == "action":
        return np.concatenate([e.actions for e in episodes])
    return np.concatenate([e.observations[key] for e in episodes])


def samples(key, values):
    """The values each statistic dimension sees, (N, D): pixels for images, time steps otherwise."""
    if key.startswith("rgb/"):
        return values.reshape(-1, values.shape[-1]).astype(np.float64)
    if key.startswith("depth/"):
        return values.reshape(-1, 1).astype(np.float64)
    return values.reshape(len(values), -1).astype(np.float64)


def rank_of(value, data):
    return np.mean(data <= value)


def test_moments_are_exact_for_every_feature(dataset):
    path, episodes = dataset
    stats = EpisodeDataset(path).stats
    assert sorted(stats) == sorted([*episodes[0].observations, "action"])
    for key in stats:
        values = concatenated(episodes, key)
        x = samples(key, values)
        s = stats[key]
        if key.startswith("rgb/"):
            expected_shape = (3,)  # per channel
        elif key.startswith("depth/"):
            expected_shape = ()  # one scalar
        else:
            expected_shape = values.shape[1:]  # per element
        for name in ("mean", "std", "min", "max", "q01", "q99"):
            assert s[name].shape == expected_shape, (key, name)
        assert s["count"] == x.shape[0], key
        np.testing.assert_allclose(s["mean"].reshape(-1), x.mean(0), rtol=1e-10, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(s["std"].reshape(-1), x.std(0), rtol=1e-9, atol=1e-12, err_msg=key)
        np.testing.assert_array_equal(s["min"].reshape(-1), x.min(0), err_msg=key)
        np.testing.assert_array_equal(s["max"].reshape(-1), x.max(0), err_msg=key)


def test_quantiles_within_sketch_error(tmp_path, create_writer, make_episode):
    # enough steps (2000 per dimension, k = 400) that the KLL sketches compact and merge for real
    episodes = [make_episode(125, seed) for seed in range(16)]
    with create_writer(tmp_path / "ds") as writer:
        for e in episodes:
            writer.add_episode(e)
    stats = EpisodeDataset(tmp_path / "ds").stats
    tolerance = RANK_ERROR + 0.002
    for key in ("action", "state", "depth/corner"):
        x = samples(key, concatenated(episodes, key))
        for d in range(x.shape[1]):
            q01, q99 = stats[key]["q01"].reshape(-1)[d], stats[key]["q99"].reshape(-1)[d]
            assert abs(rank_of(q01, x[:, d]) - 0.01) <= tolerance + (0.02 if key.startswith("depth") else 0), key
            assert abs(rank_of(q99, x[:, d]) - 0.99) <= tolerance + (0.02 if key.startswith("depth") else 0), key
    x = samples("rgb/corner", concatenated(episodes, "rgb/corner"))  # sketches see a fixed pixel subsample
    for c in range(3):
        assert abs(rank_of(stats["rgb/corner"]["q01"][c], x[:, c]) - 0.01) < 0.02
        assert abs(rank_of(stats["rgb/corner"]["q99"][c], x[:, c]) - 0.99) < 0.02


def test_merging_many_episodes_equals_one_shot():
    rng = np.random.default_rng(0)
    parts = [rng.normal(3.0, 2.0, (int(rng.integers(1, 300)), 4)).astype(np.float32) for _ in range(60)]
    one_shot = FeatureStats.of("state", np.concatenate(parts))
    merged: dict[str, FeatureStats] = {}
    for part in parts:
        merge_into(merged, {"state": FeatureStats.of("state", part)})
    a, b = one_shot.summary(), merged["state"].summary()
    assert a["count"] == b["count"] == sum(len(p) for p in parts)
    for name in ("mean", "std"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12)
    for name in ("min", "max"):
        np.testing.assert_array_equal(a[name], b[name])
    data = np.concatenate(parts)
    error = RANK_ERROR
    for d in range(4):
        for q in ("q01", "q99"):
            target = 0.01 if q == "q01" else 0.99
            assert abs(rank_of(a[q][d], data[:, d]) - target) <= error
            assert abs(rank_of(b[q][d], data[:, d]) - target) <= error


def test_manifest_statistics_are_the_merge_of_the_episode_files(dataset):
    path, episodes = dataset
    merged: dict[str, FeatureStats] = {}
    for i in range(len(episodes)):
        with h5py.File(path / "episodes" / f"episode_{i:06d}.h5", "r") as f:
            merge_into(merged, stats_from_dict(json.loads(f["stats"][()].tobytes())))
    stats = EpisodeDataset(path).stats
    for key, s in merged.items():
        summary = s.summary()
        assert summary["count"] == stats[key]["count"]
        np.testing.assert_allclose(summary["mean"], stats[key]["mean"], rtol=1e-12)
        np.testing.assert_array_equal(summary["max"], stats[key]["max"])


def test_a_missing_statistic_raises(dataset, tmp_path, create_writer):
    path, _ = dataset
    with pytest.raises(KeyError, match=r"no statistics for 'rgb/top'; it has \['action', 'depth/corner'"):
        EpisodeDataset(path).stats["rgb/top"]
    create_writer(tmp_path / "empty").close()
    with pytest.raises(KeyError, match="no statistics for 'state'; it has no episodes yet"):
        EpisodeDataset(tmp_path / "empty").stats["state"]


def test_accumulators_survive_serialisation_and_pickling():
    values = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    stats = FeatureStats.of("rgb/top", values)
    for clone in (FeatureStats.from_dict(json.loads(json.dumps(stats.to_dict()))), pickle.loads(pickle.dumps(stats))):
        for name, value in stats.summary().items():
            np.testing.assert_array_equal(clone.summary()[name], value)
    with pytest.raises(ValueError, match="cannot merge"):
        stats.merge(FeatureStats((4,)))

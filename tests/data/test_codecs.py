"""Compact storage: lossless image codecs shrink render-like frames, depth as uint16 millimetres reads
back as float32 metres within half a millimetre, on every read path."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from polyact.data import EpisodeDataset
from polyact.data.synthetic import synthetic_episode


def _bytes_on_disk(path) -> int:
    return sum(f.stat().st_size for f in (path / "episodes").iterdir())


@pytest.fixture
def rendered_episodes(spec):
    return [synthetic_episode(spec, length, seed=seed, rendered=True) for seed, length in enumerate((30, 12))]


def test_lossless_codecs_shrink_rendered_frames_and_keep_every_bit(tmp_path, create_writer, rendered_episodes):
    sizes = {}
    for codec in ("none", "lz4", "zstd"):
        with create_writer(tmp_path / codec, image_compression=codec) as writer:
            for episode in rendered_episodes:
                writer.add_episode(episode)
        sizes[codec] = _bytes_on_disk(tmp_path / codec)
        ds = EpisodeDataset(tmp_path / codec)
        got = ds.load_episode(0).observations["rgb/corner"]
        np.testing.assert_array_equal(got, rendered_episodes[0].observations["rgb/corner"])
    assert sizes["zstd"] < sizes["lz4"] < sizes["none"]


@pytest.mark.parametrize("memory_budget", [0, 1 << 30], ids=["frames-from-disk", "held-in-memory"])
def test_depth_in_millimetres_reads_back_as_metres_within_half_a_millimetre(
    tmp_path, create_writer, rendered_episodes, memory_budget
):
    with create_writer(tmp_path / "ds", image_compression="zstd", depth_storage="uint16_mm") as writer:
        for episode in rendered_episodes:
            writer.add_episode(episode)
    with h5py.File(tmp_path / "ds" / "episodes" / "episode_000000.h5", "r") as f:
        assert f["obs/depth/corner"].dtype == np.uint16 and f["obs/depth/corner"].attrs["scale"] == 0.001
    ds = EpisodeDataset(tmp_path / "ds", memory_budget=memory_budget)
    want = rendered_episodes[0].observations["depth/corner"]
    got = ds.load_episode(0).observations["depth/corner"]
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=0.0005 + 1e-6, rtol=0)
    window = ds.window(0, 5, 2, 3, keys=["depth/corner", "rgb/corner"])
    np.testing.assert_allclose(window["obs/depth/corner"], want[4:6], atol=0.0005 + 1e-6, rtol=0)
    np.testing.assert_array_equal(window["obs/rgb/corner"], rendered_episodes[0].observations["rgb/corner"][4:6])
    assert ds.held_in_memory("depth/corner") == (memory_budget > 0)
    # statistics come from the float values, before rounding
    both = np.concatenate([e.observations["depth/corner"].ravel() for e in rendered_episodes])
    assert ds.stats["depth/corner"]["mean"] == pytest.approx(both.mean(), rel=1e-5)
    assert ds.verify() == []


def test_millimetres_are_half_the_depth_bytes(tmp_path, create_writer, rendered_episodes):
    sizes = {}
    for depth in ("float32", "uint16_mm"):
        with create_writer(tmp_path / depth, depth_storage=depth) as writer:
            for episode in rendered_episodes:
                writer.add_episode(episode)
        with h5py.File(tmp_path / depth / "episodes" / "episode_000000.h5", "r") as f:
            sizes[depth] = f["obs/depth/corner"].id.get_storage_size()
    assert sizes["uint16_mm"] * 2 <= sizes["float32"] * 1.01  # fletcher32 adds 4 bytes a chunk

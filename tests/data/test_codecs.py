"""Compact storage: lossless image codecs shrink render-like frames and are the default, depth as uint16
millimetres reads back as float32 metres within half a millimetre on every read path, a depth map that
millimetres cannot hold is refused, and lossy WebP frames read back within their stated error."""

from __future__ import annotations

import io

import h5py
import hdf5plugin
import numpy as np
import pytest
from PIL import Image

from polyact.data import DatasetWriter, EpisodeDataset
from polyact.data.format import COMPRESSED_FRAMES_PER_CHUNK
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.errors import ConfigError, DatasetError, UnknownNameError


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
        with create_writer(tmp_path / depth, image_compression="none", depth_storage=depth) as writer:
            for episode in rendered_episodes:
                writer.add_episode(episode)
        with h5py.File(tmp_path / depth / "episodes" / "episode_000000.h5", "r") as f:
            sizes[depth] = f["obs/depth/corner"].id.get_storage_size()
    assert sizes["uint16_mm"] * 2 <= sizes["float32"] * 1.01  # fletcher32 adds 4 bytes a chunk


def test_new_datasets_compress_runs_of_frames_losslessly_by_default(tmp_path, create_writer, rendered_episodes):
    with create_writer(tmp_path / "ds") as writer:
        for episode in rendered_episodes:
            writer.add_episode(episode)
    ds = EpisodeDataset(tmp_path / "ds", memory_budget=0)
    assert ds.storage == {"image_compression": "zstd", "depth_storage": "float32"}
    with h5py.File(tmp_path / "ds" / "episodes" / "episode_000000.h5", "r") as f:
        for name in ("obs/rgb/corner", "obs/depth/corner"):
            plist = f[name].id.get_create_plist()
            assert hdf5plugin.ZSTD_ID in [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
            assert f[name].fletcher32
            assert f[name].chunks[0] == COMPRESSED_FRAMES_PER_CHUNK > 1
    with h5py.File(tmp_path / "ds" / "episodes" / "episode_000001.h5", "r") as f:
        assert f["obs/rgb/corner"].chunks[0] == min(12, COMPRESSED_FRAMES_PER_CHUNK)
    want = rendered_episodes[0].observations
    for t in (0, 3, 4, 29):  # windows that start inside a chunk and ones that straddle two
        window = ds.window(0, t, 2, 1, keys=["rgb/corner", "depth/corner"])
        np.testing.assert_array_equal(window["obs/rgb/corner"], want["rgb/corner"][[max(t - 1, 0), t]])
        np.testing.assert_array_equal(window["obs/depth/corner"], want["depth/corner"][[max(t - 1, 0), t]])
    assert ds.verify() == []


def test_depth_beyond_what_millimetres_hold_is_refused_not_clipped(tmp_path, create_writer, rendered_episodes):
    episode = rendered_episodes[1]
    episode.observations["depth/corner"][3, 0, 0] = 83.3  # as far as Meta-World's far plane
    with create_writer(tmp_path / "ds", depth_storage="uint16_mm") as writer:
        with pytest.raises(
            DatasetError, match=r"depth/corner spans .* to 83.300 m, outside .*use depth_storage=float32"
        ):
            writer.add_episode(episode)
        assert writer.num_episodes == 0
    with create_writer(tmp_path / "f32", depth_storage="float32") as writer:
        writer.add_episode(episode)
    got = EpisodeDataset(tmp_path / "f32").load_episode(0).observations["depth/corner"]
    np.testing.assert_array_equal(got, episode.observations["depth/corner"])


# The lossy codec's error on 64x64 render-like frames at the default quality, as docs/storage.md states it
# (measured: PSNR 33.4 dB, mean absolute error 3.0 of 255).
LOSSY_MIN_PSNR_DB = 30.0
LOSSY_MAX_MEAN_ABS_ERROR = 4.0


def _psnr(got: np.ndarray, want: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((got.astype(np.float64) - want) ** 2)))


@pytest.fixture
def spec64():
    return synthetic_env_spec(cameras=("corner",), height=64, width=64, state_dim=6, goal_dim=0)


def _write(path, spec, episodes, **storage) -> EpisodeDataset:
    with DatasetWriter.for_spec(path, spec, **storage) as writer:
        for episode in episodes:
            writer.add_episode(episode)
    return EpisodeDataset(path)


@pytest.mark.parametrize("codec, version", [("webp", 2), ("jpeg", 3)])
@pytest.mark.parametrize("memory_budget", [0, 1 << 30], ids=["frames-from-disk", "held-in-memory"])
def test_lossy_frames_read_back_within_the_stated_error_on_every_read_path(
    tmp_path, spec64, memory_budget, codec, version
):
    episodes = [synthetic_episode(spec64, length, seed=seed, rendered=True) for seed, length in enumerate((20, 9))]
    _write(tmp_path / "ds", spec64, episodes, image_compression=codec)
    ds = EpisodeDataset(tmp_path / "ds", memory_budget=memory_budget)
    assert ds.storage == {"image_compression": codec, "depth_storage": "float32", "image_quality": 75}
    assert ds.format_version == version  # a polyact from before the codec says to upgrade
    with h5py.File(tmp_path / "ds" / "episodes" / "episode_000000.h5", "r") as f:
        assert f.attrs["format_version"] == version and f["obs/rgb/corner"].attrs["codec"] == codec
    for index, episode in enumerate(episodes):
        got = ds.load_episode(index).observations
        want = episode.observations
        assert got["rgb/corner"].dtype == np.uint8 and got["rgb/corner"].shape == want["rgb/corner"].shape
        assert _psnr(got["rgb/corner"], want["rgb/corner"]) >= LOSSY_MIN_PSNR_DB
        assert np.abs(got["rgb/corner"].astype(int) - want["rgb/corner"]).mean() <= LOSSY_MAX_MEAN_ABS_ERROR
        for key in ("depth/corner", "state"):  # depth keeps the lossless default, vectors are never touched
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
        for t in (0, 5, episode.length - 1):  # a window decodes exactly the frames an episode read gives
            window = ds.window(index, t, 3, 2, keys=["rgb/corner"])
            np.testing.assert_array_equal(
                window["obs/rgb/corner"], got["rgb/corner"][[max(t - 2, 0), max(t - 1, 0), t]]
            )
    assert ds.held_in_memory("rgb/corner") == (memory_budget > 0)
    both = np.concatenate([e.observations["rgb/corner"] for e in episodes]).reshape(-1, 3)
    np.testing.assert_allclose(ds.stats["rgb/corner"]["mean"], both.mean(axis=0), rtol=1e-6)  # from the originals
    assert ds.verify() == []


@pytest.mark.parametrize("codec", ["webp", "jpeg"])
def test_lossy_quality_trades_bytes_for_error(tmp_path, spec64, codec):
    episodes = [synthetic_episode(spec64, 16, seed=seed, rendered=True) for seed in range(2)]
    sizes, errors = {}, {}
    for quality in (30, 95):
        ds = _write(tmp_path / str(quality), spec64, episodes, image_compression=codec, image_quality=quality)
        with h5py.File(tmp_path / str(quality) / "episodes" / "episode_000000.h5", "r") as f:
            sizes[quality] = f["obs/rgb/corner"].shape[0]
        errors[quality] = np.abs(
            ds.load_episode(0).observations["rgb/corner"].astype(int) - episodes[0].observations["rgb/corner"]
        ).mean()
    assert sizes[30] < sizes[95] < 64 * 64 * 3 * 16 / 4 and errors[95] < errors[30]


def test_bad_storage_settings_name_the_valid_choices(tmp_path, spec64):
    with pytest.raises(UnknownNameError, match=r"unknown image compression 'avif'.*jpeg.*webp"):
        DatasetWriter.for_spec(tmp_path / "a", spec64, image_compression="avif")
    for quality in (0, 101, 7.5, "high"):
        with pytest.raises(ConfigError, match="image_quality must be an integer from 1 to 100"):
            DatasetWriter.for_spec(tmp_path / "a", spec64, image_compression="webp", image_quality=quality)
    assert not (tmp_path / "a").exists()


def test_jpeg_frames_share_one_stored_header_and_stay_standard_jpeg(tmp_path, spec64):
    episode = synthetic_episode(spec64, 12, seed=3, rendered=True)
    ds = _write(tmp_path / "ds", spec64, [episode], image_compression="jpeg")
    with h5py.File(tmp_path / "ds" / "episodes" / "episode_000000.h5", "r") as f:
        header = f["obs/rgb/corner"].attrs["header"].tobytes()
        data, offsets = f["obs/rgb/corner"][()], f["frame_offsets/rgb/corner"][()]
    assert header.startswith(b"\xff\xd8") and len(header) > 500  # SOI and the tables, stored once
    assert data.size + len(header) < (len(offsets) - 1) * len(header)  # cut from every frame
    got = ds.load_episode(0).observations["rgb/corner"]
    for t in (0, 11):  # header + a frame's bytes is a whole JPEG any decoder reads: here Pillow's
        whole = header + data[offsets[t] : offsets[t + 1]].tobytes()
        with Image.open(io.BytesIO(whole), formats=["JPEG"]) as image:
            assert np.abs(np.asarray(image).astype(int) - got[t]).max() <= 1

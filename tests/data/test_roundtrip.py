"""What is written is what is read: every array bit for bit, dtypes, shapes and metadata."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from polyact.data import FORMAT_VERSION, EpisodeDataset, open_dataset
from polyact.data.format import COMPRESSED_FRAMES_PER_CHUNK, obs_path


@pytest.mark.parametrize("image_compression", ["none", "gzip", "lz4", "zstd"])
def test_every_array_and_field_round_trips(
    tmp_path, create_writer, make_episode, assert_same_episode, image_compression
):
    episodes = [make_episode(length, seed) for seed, length in enumerate((4, 1, 9))]
    with create_writer(tmp_path / "ds", image_compression=image_compression) as writer:
        assert [writer.add_episode(e) for e in episodes] == [0, 1, 2]
    ds = open_dataset(tmp_path / "ds")
    assert len(ds) == 3 and ds.num_steps == 14
    for i, episode in enumerate(episodes):
        assert_same_episode(ds.load_episode(i), episode)
    arrays = ds.episode_arrays(2, keys=["state"])
    assert sorted(arrays) == ["action", "obs/state", "reward", "success"]
    np.testing.assert_array_equal(arrays["obs/state"], episodes[2].observations["state"])


def test_manifest_metadata_round_trips(dataset, spec):
    path, episodes = dataset
    ds = EpisodeDataset(path)
    assert ds.format_version == FORMAT_VERSION
    assert ds.features == spec.features()
    assert ds.action_feature == spec.action_feature()
    assert ds.env_spec == spec
    assert ds.fps == spec.control_hz
    assert ds.metadata == {"collection": {"seed": 0, "cameras": ["corner", "wrist"]}}
    assert ds.repairs == []
    assert sorted(ds.tasks) == sorted(spec.tasks)
    for task, instructions in ds.tasks.items():  # instructions are gathered as episodes arrive
        assert sorted(instructions) == sorted({e.instruction for e in episodes if e.task == task})
    for i, (record, episode) in enumerate(zip(ds.episodes, episodes, strict=True)):
        assert record.index == i
        assert record.file == f"episodes/episode_{i:06d}.h5"
        assert (record.task, record.instruction, record.length, record.success, record.seed, record.extra) == (
            episode.task,
            episode.instruction,
            episode.length,
            episode.success,
            episode.seed,
            episode.extra,
        )


def test_episode_file_is_chunked_checksummed_and_self_describing(dataset):
    path, episodes = dataset
    with h5py.File(path / "episodes" / "episode_000002.h5", "r") as f:
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert (f.attrs["task"], f.attrs["instruction"], f.attrs["length"]) == (
            episodes[2].task,
            episodes[2].instruction,
            episodes[2].length,
        )
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert {obs_path(k) for k in episodes[2].observations} | {"action", "reward", "success", "stats"} == set(names)
        for name in names:
            assert f[name].fletcher32, name
        # compressed by default, in runs of consecutive frames (docs/storage.md)
        assert f["obs/rgb/corner"].chunks == (COMPRESSED_FRAMES_PER_CHUNK, 16, 16, 3)


def test_a_reader_refuses_nothing_it_was_given_and_is_picklable(dataset):
    import pickle

    path, episodes = dataset
    ds = EpisodeDataset(path)
    ds.window(0, 3, 2, 4)  # opens a file handle, which must not travel with the pickle
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone.window(0, 3, 2, 4)["obs/state"], ds.window(0, 3, 2, 4)["obs/state"])
    assert clone.stats["state"]["count"] == ds.stats["state"]["count"]

"""A damaged dataset fails with a DatasetError that names the file or episode and what was expected."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from polyact.data import EpisodeDataset, verify_dataset
from polyact.errors import DatasetError


def edit_manifest(path, change) -> None:
    meta = json.loads((path / "meta.json").read_text())
    change(meta)
    (path / "meta.json").write_text(json.dumps(meta))


def episode_file(path, i):
    return path / "episodes" / f"episode_{i:06d}.h5"


def test_missing_manifest(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"meta\.json is missing.*not a polyact dataset"):
        EpisodeDataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="does not exist"):
        EpisodeDataset(tmp_path / "nowhere")


def test_manifest_that_is_not_json(dataset):
    path, _ = dataset
    (path / "meta.json").write_text('{"format_version": 1, "episodes": [')
    with pytest.raises(DatasetError, match=r"meta\.json is not valid JSON"):
        EpisodeDataset(path)


@pytest.mark.parametrize(
    "version, message",
    [
        (99, r"format_version 99; this polyact reads versions \[1, 2, 3\]"),
        (None, r"no format_version.*supported versions: \[1, 2, 3\]"),
        ("1", r"format_version '1'"),
    ],
)
def test_unsupported_or_missing_format_version(dataset, version, message):
    path, _ = dataset

    def change(meta):
        if version is None:
            del meta["format_version"]
        else:
            meta["format_version"] = version

    edit_manifest(path, change)
    with pytest.raises(DatasetError, match=message):
        EpisodeDataset(path)


def test_manifest_lacking_a_field(dataset):
    path, _ = dataset
    edit_manifest(path, lambda meta: meta["episodes"][2].pop("length"))
    with pytest.raises(DatasetError, match=r"episodes\[2\] lacks 'length'"):
        EpisodeDataset(path)


def test_listed_episode_file_missing(dataset):
    path, _ = dataset
    episode_file(path, 3).unlink()
    with pytest.raises(DatasetError, match=r"listed in .*meta\.json are missing: .*episode_000003\.h5"):
        EpisodeDataset(path)


def test_episode_file_lacking_a_feature(dataset):
    path, _ = dataset
    with h5py.File(episode_file(path, 2), "a") as f:
        del f["obs/state"]
    ds = EpisodeDataset(path)  # episode files are checked lazily, on first use
    ds.window(0, 0, 1, 1)
    with pytest.raises(DatasetError, match=r"episode_000002\.h5 has no array 'obs/state'; expected float32\[12, 5\]"):
        ds.window(2, 0, 1, 1)
    assert any("episode_000002.h5" in p and "obs/state" in p for p in verify_dataset(path))


@pytest.mark.parametrize(
    "dtype, shape, expected",
    [
        ("float64", (12, 5), r"float64\[12, 5\], expected float32\[12, 5\]"),
        ("float32", (12, 6), r"float32\[12, 6\], expected float32\[12, 5\]"),
    ],
)
def test_episode_file_with_wrong_dtype_or_shape(dataset, dtype, shape, expected):
    path, _ = dataset
    with h5py.File(episode_file(path, 2), "a") as f:
        del f["obs/state"]
        f.create_dataset("obs/state", data=np.zeros(shape, dtype))
    with pytest.raises(DatasetError, match=r"episode_000002\.h5: 'obs/state' is " + expected):
        EpisodeDataset(path).episode_arrays(2)


def test_length_attribute_disagreeing_with_the_manifest(dataset):
    path, _ = dataset
    with h5py.File(episode_file(path, 4), "a") as f:
        f.attrs["length"] = 99
    with pytest.raises(DatasetError, match=r"episode_000004\.h5: length attribute is 99, the manifest says 9"):
        EpisodeDataset(path).window(4, 0, 1, 1)


def test_corrupt_image_chunk_is_detected_on_read(dataset):
    path, _ = dataset
    target = episode_file(path, 2)
    with h5py.File(target, "r") as f:
        chunk = f["obs/rgb/corner"].id.get_chunk_info_by_coord((5, 0, 0, 0))
    with open(target, "r+b") as f:  # flip bytes in the middle of frame 5's chunk
        f.seek(chunk.byte_offset + chunk.size // 2)
        data = f.read(4)
        f.seek(chunk.byte_offset + chunk.size // 2)
        f.write(bytes(b ^ 0xFF for b in data))
    ds = EpisodeDataset(path)
    ds.window(2, 3, 2, 4)  # frames 2 and 3 are intact
    with pytest.raises(DatasetError, match=r"episode_000002\.h5: cannot read 'obs/rgb/corner', a chunk is corrupt"):
        ds.window(2, 6, 2, 4)  # frames 5 and 6
    problems = ds.verify()
    assert len(problems) == 1 and "episode 2" in problems[0] and "obs/rgb/corner" in problems[0]


def test_truncated_episode_file(dataset):
    path, _ = dataset
    target = episode_file(path, 5)
    os.truncate(target, target.stat().st_size // 2)
    ds = EpisodeDataset(path)
    with pytest.raises(DatasetError, match=r"cannot open episode file .*episode_000005\.h5 \(episode 5\)"):
        ds.window(5, 0, 1, 1)
    assert any("episode 5" in p for p in verify_dataset(path))


def test_a_sound_dataset_verifies_clean(dataset):
    path, _ = dataset
    assert verify_dataset(path) == []

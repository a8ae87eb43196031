"""A dataset written before the storage settings existed (committed fixture, format 1: raw frames,
float32 depth, no `depth_storage` in its manifest) still reads, verifies and takes new episodes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from polyact.data import DatasetWriter, EpisodeDataset
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode

FIXTURE = Path(__file__).parent / "fixtures" / "format1_before_codecs"
SPEC = synthetic_env_spec(cameras=("corner",), height=8, width=8, state_dim=4, goal_dim=3, tasks=("reach", "push"))


def test_a_dataset_from_before_the_storage_settings_reads_every_value(tmp_path):
    path = Path(shutil.copytree(FIXTURE, tmp_path / "old"))
    ds = EpisodeDataset(path)
    assert ds.storage == {"image_compression": "none", "depth_storage": "float32"}
    assert ds.verify() == []
    for index, length in enumerate((5, 3)):  # the fixture's episodes are functions of their seeds
        want = synthetic_episode(SPEC, length, seed=index, rendered=True)
        got = ds.load_episode(index)
        for key, values in want.observations.items():
            np.testing.assert_array_equal(got.observations[key], values, err_msg=key)
        np.testing.assert_array_equal(got.actions, want.actions)
    with DatasetWriter.open(path) as writer:  # appending keeps the dataset's own settings
        writer.add_episode(synthetic_episode(SPEC, 4, seed=2, rendered=True))
    assert len(EpisodeDataset(path)) == 3 and EpisodeDataset(path).verify() == []

"""`polyact data convert`: a dataset rewritten with other storage settings keeps every value (depth to
0.5 mm in millimetres, lossy frames within their stated error), survives a SIGKILL mid-way and
continues, and refuses an unrelated output."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from polyact.cli import main
from polyact.data import DatasetWriter, EpisodeDataset
from polyact.data.recode import ConvertConfig, convert
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.errors import ConfigError, DatasetError, UnknownNameError
from polyact.faults import ENV


def assert_same_values(got: EpisodeDataset, want: EpisodeDataset) -> None:
    assert [(e.task, e.seed, e.length, e.instruction) for e in got.episodes] == [
        (e.task, e.seed, e.length, e.instruction) for e in want.episodes
    ]
    for i in range(len(want)):
        a, b = got.load_episode(i), want.load_episode(i)
        for key, values in b.observations.items():
            tolerance = 0.0005 + 1e-6 if key.startswith("depth/") else 0
            np.testing.assert_allclose(a.observations[key], values, atol=tolerance, rtol=0, err_msg=key)
            assert a.observations[key].dtype == values.dtype
        np.testing.assert_array_equal(a.actions, b.actions)


def test_convert_keeps_every_value_and_says_how_much_smaller(dataset, tmp_path, capsys):
    path, _ = dataset
    out = tmp_path / "small"
    assert main(["data", "convert", f"src={path}", f"out={out}"]) == 0
    assert "x smaller" in capsys.readouterr().out
    converted = EpisodeDataset(out)
    assert_same_values(converted, EpisodeDataset(path))
    assert converted.metadata["converted_from"]["storage"] == {
        "image_compression": "zstd",
        "depth_storage": "float32",
    }
    assert converted.verify() == []


def test_a_conversion_killed_mid_way_continues_where_it_stopped(dataset, tmp_path):
    path, _ = dataset
    out = tmp_path / "out"
    command = [sys.executable, "-m", "polyact.cli", "data", "convert", f"src={path}", f"out={out}"]
    killed = subprocess.run(command, env=os.environ | {ENV: "data.episode_committed:3"}, capture_output=True)
    assert killed.returncode == -9
    assert len(EpisodeDataset(out)) == 3  # the episodes copied before the kill are readable
    env = {k: v for k, v in os.environ.items() if k != ENV}
    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
    assert_same_values(EpisodeDataset(out), EpisodeDataset(path))


def test_an_output_that_is_not_this_conversion_is_refused(dataset, tmp_path):
    path, _ = dataset
    convert(ConvertConfig(src=str(path), out=str(tmp_path / "a"), image_compression="lz4"))
    with pytest.raises(DatasetError, match="not an interrupted conversion of .* with these settings"):
        convert(ConvertConfig(src=str(path), out=str(tmp_path / "a"), image_compression="zstd"))


def test_bad_conversion_settings_are_refused(dataset):
    path, _ = dataset
    with pytest.raises(ConfigError, match="needs src=DATASET and out=NEW_DIRECTORY"):
        ConvertConfig(src=str(path))
    with pytest.raises(ConfigError, match="out must be a new directory"):
        ConvertConfig(src=str(path), out=str(path))
    with pytest.raises(UnknownNameError, match="unknown image compression 'avif'"):
        ConvertConfig(src=str(path), out="x", image_compression="avif")


def test_convert_to_lossy_frames_and_back_keeps_every_other_value(tmp_path):
    spec = synthetic_env_spec(cameras=("corner",), height=64, width=64, state_dim=6, goal_dim=0)
    with DatasetWriter.for_spec(tmp_path / "src", spec, image_compression="none") as writer:
        for seed, length in enumerate((12, 7)):
            writer.add_episode(synthetic_episode(spec, length, seed=seed, rendered=True))
    source = EpisodeDataset(tmp_path / "src")
    assert (
        main(["data", "convert", f"src={tmp_path / 'src'}", f"out={tmp_path / 'webp'}", "image_compression=webp"]) == 0
    )
    lossy = EpisodeDataset(tmp_path / "webp")
    assert lossy.storage == {"image_compression": "webp", "depth_storage": "float32", "image_quality": 75}
    convert(ConvertConfig(src=str(tmp_path / "webp"), out=str(tmp_path / "back"), image_compression="zstd"))
    back = EpisodeDataset(tmp_path / "back")
    for i in range(len(source)):
        want, got, again = source.load_episode(i), lossy.load_episode(i), back.load_episode(i)
        error = np.abs(got.observations["rgb/corner"].astype(int) - want.observations["rgb/corner"])
        assert error.mean() <= 4.0  # the bound docs/storage.md states, as in test_codecs.py
        np.testing.assert_array_equal(again.observations["rgb/corner"], got.observations["rgb/corner"])
        for key in ("depth/corner", "state"):
            np.testing.assert_array_equal(got.observations[key], want.observations[key])
            np.testing.assert_array_equal(again.observations[key], want.observations[key])
        np.testing.assert_array_equal(again.actions, want.actions)
    assert lossy.verify() == [] and back.verify() == []
    with pytest.raises(ConfigError, match="image_quality must be an integer from 1 to 100, got 0"):
        ConvertConfig(src=str(tmp_path / "src"), out="x", image_compression="webp", image_quality=0)

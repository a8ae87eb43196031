"""`polyact data convert`: a dataset rewritten with other storage settings keeps every value (depth to
0.5 mm in millimetres), survives a SIGKILL mid-way and continues, and refuses an unrelated output."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from polyact.cli import main
from polyact.data import EpisodeDataset
from polyact.data.recode import ConvertConfig, convert
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
        "depth_storage": "uint16_mm",
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
    with pytest.raises(UnknownNameError, match="unknown image compression 'jpeg'"):
        ConvertConfig(src=str(path), out="x", image_compression="jpeg")

"""`polyact data view`: an episode's frames hold every camera as recorded and a cursor that walks along the
plotted actions and state; the mp4 has one frame per step; bad requests are refused."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from polyact.cli import main
from polyact.data import DatasetWriter, EpisodeDataset
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.dataview import CURSOR, DataViewConfig, episode_frames
from polyact.errors import ConfigError


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    spec = synthetic_env_spec(cameras=("corner", "wrist"), height=16, width=16)
    with DatasetWriter.for_spec(tmp_path / "demos", spec) as writer:
        writer.add_episode(synthetic_episode(spec, 12, seed=0, rendered=True))
        writer.add_episode(synthetic_episode(spec, 9, seed=1, rendered=True))
    return tmp_path / "demos"


def test_frames_hold_every_camera_and_a_moving_cursor(dataset: Path):
    ds = EpisodeDataset(dataset)
    frames = episode_frames(ds, 1, scale=3)
    rgb = ds.episode_arrays(1, keys=["rgb/corner", "rgb/wrist"])
    assert frames.shape[0] == 9 and frames.shape[2] >= 2 * 16 * 3
    for step in (0, 8):
        np.testing.assert_array_equal(frames[step, :48:3, :48:3], rgb["obs/rgb/corner"][step])
        np.testing.assert_array_equal(frames[step, :48:3, 48:96:3], rgb["obs/rgb/wrist"][step])
    plot = frames[:, 48:]
    cursor_columns = [np.flatnonzero((plot[t] == CURSOR).all(-1).all(0)) for t in range(9)]
    assert all(len(c) == 1 for c in cursor_columns)
    assert cursor_columns[0][0] < cursor_columns[4][0] < cursor_columns[8][0]


def test_the_command_writes_a_video_and_a_still(dataset: Path, tmp_path: Path):
    assert main(["data", "view", f"path={dataset}", f"out={tmp_path / 'e0.mp4'}", "scale=2"]) == 0
    video = iio.imread(tmp_path / "e0.mp4", plugin="FFMPEG")
    assert video.shape[0] == 12
    assert main(["data", "view", f"path={dataset}", f"out={tmp_path / 's.png'}", "still=5"]) == 0
    still = np.asarray(Image.open(tmp_path / "s.png"))
    np.testing.assert_array_equal(still, episode_frames(EpisodeDataset(dataset), 0, scale=4)[5])


def test_what_view_refuses(dataset: Path):
    with pytest.raises(ConfigError, match="episode 5 is not in .* which has episodes 0..1"):
        episode_frames(EpisodeDataset(dataset), 5, scale=1)
    with pytest.raises(ConfigError, match="needs path=DATASET"):
        DataViewConfig()
    with pytest.raises(ConfigError, match="scale must be >= 1"):
        DataViewConfig(path=str(dataset), scale=0)

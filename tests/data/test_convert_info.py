"""The .npz converter both ways, and what `polyact data info` prints."""

from __future__ import annotations

import re

import numpy as np
import pytest

from polyact.data import EpisodeDataset, convert_npz, export_npz, format_info
from polyact.errors import DatasetError


def test_npz_round_trip_is_lossless(dataset, tmp_path, spec, assert_same_episode):
    path, episodes = dataset
    files = export_npz(path, tmp_path / "npz")
    assert [f.name for f in files] == [f"episode_{i:06d}.npz" for i in range(len(episodes))]
    with np.load(files[2]) as z:
        assert str(z["task"]) == episodes[2].task and z["rgb/corner"].dtype == np.uint8
        np.testing.assert_array_equal(z["action"], episodes[2].actions)

    assert convert_npz(tmp_path / "npz", tmp_path / "back", fps=spec.control_hz, env_spec=spec) == len(episodes)
    back = EpisodeDataset(tmp_path / "back")
    original = EpisodeDataset(path)
    assert back.features == original.features and back.env_spec == spec
    assert back.tasks.keys() == original.tasks.keys()
    for i, episode in enumerate(episodes):
        assert_same_episode(back.load_episode(i), episode)
    assert back.metadata["converted_from"]["filled"] == []
    np.testing.assert_array_equal(back.stats["state"]["mean"], original.stats["state"]["mean"])


def test_minimal_npz_files_convert_and_say_what_was_filled_in(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "npz").mkdir()
    for i, (task, length) in enumerate([("open", 5), ("close", 3), ("open", 4)]):
        np.savez(
            tmp_path / "npz" / f"ep{i}.npz",
            **{
                "rgb/top": rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8),
                "state": rng.normal(size=(length, 2)).astype(np.float32),
                "action": rng.normal(size=(length, 3)).astype(np.float32),
                "task": np.array(task),
                "instruction": np.array(f"{task} it"),
                "seed": np.int64(i),
                "success": np.bool_(i != 1),
            },
        )
    convert_npz(tmp_path / "npz", tmp_path / "ds", fps=20.0)
    ds = EpisodeDataset(tmp_path / "ds")
    assert sorted(ds.features) == ["rgb/top", "state"] and ds.env_spec is None and ds.fps == 20.0
    assert ds.tasks == {"open": ["open it"], "close": ["close it"]}
    assert ds.metadata["converted_from"]["filled"] == ["reward", "step_success"]
    episode = ds.load_episode(0)
    assert episode.successes.tolist() == [False] * 4 + [True] and not episode.rewards.any()
    (tmp_path / "bad").mkdir()
    np.savez(tmp_path / "bad" / "ep.npz", action=np.zeros((2, 3), np.float32))
    with pytest.raises(DatasetError, match=r"ep\.npz lacks \['task', 'instruction', 'seed', 'success'\]"):
        convert_npz(tmp_path / "bad", tmp_path / "bad_ds", fps=20.0)


def test_info_reports_every_task_with_its_counts(dataset):
    path, episodes = dataset
    text = format_info(path)
    assert str(path) in text and "format       version 1" in text
    assert f"episodes     {len(episodes)} ({sum(e.length for e in episodes)} steps) at 10 fps" in text
    for task in {e.task for e in episodes}:
        mine = [e for e in episodes if e.task == task]
        lengths = [e.length for e in mine]
        row = (
            rf"\n  {re.escape(task)}\s+{len(mine)}\s+{sum(e.success for e in mine)}\s+"
            rf"{np.mean(lengths):.1f}\s+{min(lengths)}\s+{max(lengths)}\n"
        )
        assert re.search(row, text), f"no row for {task}:\n{text}"
    for key in ["rgb/corner", "depth/wrist", "state", "action"]:
        assert re.search(rf"\n  {re.escape(key)}\s+(uint8|float32)\s+\(", text)
    assert re.search(r"\n  action mean\s+\[", text) and re.search(r"\n  state q99\s+\[", text)
    assert re.search(r"size\s+\d+\.\d (KiB|MiB) on disk, \d+\.\d KiB a step", text)
    assert "storage      image frames zstd, depth float32" in text
    assert "repairs on open: none" in text


def test_info_lists_repairs(dataset):
    path, _ = dataset
    (path / "episodes" / ".episode_000006.h5.tmp").write_bytes(b"torn")
    assert "repairs on open:\n  - ignored 1 torn write(s)" in format_info(path)

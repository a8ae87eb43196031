"""Scripted-demonstration collection: real workers, real envs, real files; kills and full disks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from polyact.cli import main
from polyact.collect import CollectConfig, collect, record_episode
from polyact.data import EpisodeDataset
from polyact.data.codecs import decode_frames, encode_frames
from polyact.envs.config import EVAL_SEED_BASE, EnvConfig
from polyact.envs.registry import make_env, make_expert
from polyact.errors import ConfigError
from polyact.faults import ENV as FAULT_ENV

SMALL = ["env.height=32", "env.width=32", "workers=2", "progress=false"]


def polyact(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "polyact.cli", *args], capture_output=True, text=True, **kwargs)


def test_record_episode_matches_the_environment():
    env = make_env("reach-v3", EnvConfig(tasks="reach-v3", height=24, width=24))
    try:
        episode = record_episode(env, make_expert(env), seed=3)
        obs, _ = env.reset(seed=3)
    finally:
        env.close()
    assert episode.success and episode.successes[-1] and not episode.successes[:-1].any()
    assert episode.instruction == obs["instruction"] and episode.seed == 3
    assert np.array_equal(episode.observations["rgb/corner"][0], obs["rgb/corner"])
    assert episode.observations["state"].shape == (episode.length, 4)
    assert episode.actions.dtype == np.float32 and np.abs(episode.actions).max() <= 1.0


@pytest.mark.slow
def test_collect_keeps_the_first_successful_seeds_of_each_task(tmp_path):
    cfg = CollectConfig(
        out=str(tmp_path / "ds"),
        env=EnvConfig(tasks="reach-v3", height=24, width=24),
        episodes_per_task=2,
        workers=2,
        progress=False,
    )
    report = collect(cfg)
    ds = EpisodeDataset(cfg.out)
    assert [(e.task, e.seed, e.success) for e in ds.episodes] == [("reach-v3", 0, True), ("reach-v3", 1, True)]
    assert report.tasks[0].attempts == 2 and report.tasks[0].successes == 2
    assert ds.metadata["collection"]["seed"] == 0
    assert ds.env_spec is not None and ds.env_spec.tasks == ("reach-v3",)
    assert "reach-v3" in report.table()


def _killed_cli(args: list[str], log: Path, fault: str) -> tuple[int, str]:
    """`polyact ARGS` killed at `fault` (polyact.faults); its exit status and output. Its workers, which
    outlive a parent killed by SIGKILL, are killed with it."""
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV} | {FAULT_ENV: fault}
    with open(log, "w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "polyact.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        status = child.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    return status, log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "listed"),
    [
        ("data.episode_committed:4", 4),  # right after the 4th commit
        ("data.episode_file_committed:4", 3),  # the 4th episode's file is in place, the manifest lists 3
    ],
)
def test_collection_killed_with_sigkill_resumes_where_it_stopped(tmp_path, fault, listed):
    out = tmp_path / "ds"
    args = ["collect", *SMALL, "env.tasks=MT10", "episodes_per_task=2", f"out={out}"]
    status, output = _killed_cli(args, tmp_path / "killed.log", fault)
    assert status == -signal.SIGKILL, output
    assert len(json.loads((out / "meta.json").read_text())["episodes"]) == listed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = EpisodeDataset(out)
    assert len(caught) == len(before.repairs) == 4 - listed  # a file the manifest missed is added back
    kept_before = [(e.task, e.seed) for e in before.episodes]
    assert len(kept_before) == 4

    resumed = polyact(*args)
    assert resumed.returncode == 0, resumed.stderr
    after = EpisodeDataset(out)
    pairs = [(e.task, e.seed) for e in after.episodes]
    assert pairs[:4] == kept_before  # nothing committed before the kill was lost or redone
    assert len(pairs) == len(set(pairs)) == 20
    by_task: dict[str, list[int]] = {}
    for task, seed in pairs:
        by_task.setdefault(task, []).append(seed)
    # the MT10 experts succeed from seeds 0 and 1, so an uninterrupted run keeps exactly those
    assert by_task == {task: [0, 1] for task in by_task} and len(by_task) == 10
    assert after.verify() == [] and after.repairs == []
    assert "expert success" in resumed.stdout


def test_resuming_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "ds"
    first = CollectConfig(out=str(out), env=EnvConfig(tasks="reach-v3", height=16, width=16), episodes_per_task=1)
    from polyact.collect import _open_or_create

    _open_or_create(first, ("reach-v3",)).close()
    other = CollectConfig(out=str(out), env=EnvConfig(tasks="reach-v3", height=32, width=32), episodes_per_task=1)
    with pytest.raises(ConfigError, match="same settings"):
        _open_or_create(other, ("reach-v3",))


@pytest.mark.slow
def test_collect_writes_the_storage_settings_it_is_given(tmp_path):
    """The same seeds collected twice, raw and as JPEG frames: only the images differ, within the error."""
    base = [*SMALL, "env.tasks=reach-v3", "episodes_per_task=2"]
    assert main(["collect", *base, f"out={tmp_path / 'raw'}", "image_compression=none"]) == 0
    assert main(["collect", *base, f"out={tmp_path / 'jpeg'}", "image_compression=jpeg", "image_quality=90"]) == 0
    raw, lossy = EpisodeDataset(tmp_path / "raw"), EpisodeDataset(tmp_path / "jpeg")
    assert lossy.storage == {"image_compression": "jpeg", "depth_storage": "float32", "image_quality": 90}
    assert lossy.format_version == 3 and raw.storage["image_compression"] == "none"
    assert [(e.task, e.seed) for e in lossy.episodes] == [(e.task, e.seed) for e in raw.episodes]
    for index in range(len(raw)):
        want, got = raw.load_episode(index), lossy.load_episode(index)
        np.testing.assert_array_equal(got.actions, want.actions)
        np.testing.assert_array_equal(got.observations["depth/corner"], want.observations["depth/corner"])
        frames = want.observations["rgb/corner"]
        data, offsets, header = encode_frames(frames, "jpeg", 90)  # what the settings asked for, exactly
        np.testing.assert_array_equal(
            got.observations["rgb/corner"], decode_frames(data, offsets, frames.shape[1:], "jpeg", header)
        )
        assert not np.array_equal(got.observations["rgb/corner"], frames)
    assert sum(f.stat().st_size for f in (tmp_path / "jpeg" / "episodes").iterdir()) < sum(
        f.stat().st_size for f in (tmp_path / "raw" / "episodes").iterdir()
    )


def test_extending_a_dataset_keeps_its_storage_and_says_so(tmp_path):
    from polyact.collect import _open_or_create

    env = EnvConfig(tasks="reach-v3", height=16, width=16)
    first = CollectConfig(out=str(tmp_path / "ds"), env=env, episodes_per_task=1, image_compression="lz4")
    _open_or_create(first, ("reach-v3",)).close()
    other = CollectConfig(out=str(tmp_path / "ds"), env=env, episodes_per_task=1, image_compression="jpeg")
    with pytest.warns(UserWarning, match="stores frames with .*lz4.* not with .*jpeg"):
        writer = _open_or_create(other, ("reach-v3",))
    assert writer.storage == {"image_compression": "lz4", "depth_storage": "float32"}
    writer.close()


def test_bad_collect_config_fails_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["collect", "episodes_per_tsk=3", f"out={out}"]) == 2
    typo = capsys.readouterr().err
    assert "unknown config key 'episodes_per_tsk'" in typo and "episodes_per_task" in typo
    assert main(["collect", "env.tasks=MT11", f"out={out}"]) == 2
    assert "closest first: MT10" in capsys.readouterr().err
    assert main(["collect", "episodes_per_task=many", f"out={out}"]) == 2
    assert "'episodes_per_task'" in capsys.readouterr().err
    assert main(["collect", f"seed={EVAL_SEED_BASE}", f"out={out}"]) == 2
    assert "kept for evaluation" in capsys.readouterr().err
    assert main(["collect", "image_compression=avif", f"out={out}"]) == 2
    assert "unknown image compression 'avif'" in capsys.readouterr().err
    assert main(["collect", "image_compression=jpeg", "image_quality=0", f"out={out}"]) == 2
    assert "image_quality must be an integer from 1 to 100" in capsys.readouterr().err
    assert not out.exists()


def test_unwritable_output_path_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert main(["collect", *SMALL, "env.tasks=reach-v3", "episodes_per_task=1", f"out={blocker / 'ds'}"]) == 2
    err = capsys.readouterr().err
    assert "cannot create a dataset" in err and str(blocker) in err


def _small_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode == 0


@pytest.mark.slow
def test_disk_full_during_collection_keeps_earlier_episodes(tmp_path):
    mount = tmp_path / "small"
    if os.geteuid() != 0 or not _small_tmpfs(mount, "1200k"):
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    try:
        out = mount / "ds"
        result = polyact("collect", *SMALL, "env.tasks=reach-v3", "episodes_per_task=40", f"out={out}")
        assert result.returncode == 2, result.stdout
        assert "disk full" in result.stderr and "earlier episodes are intact" in result.stderr
        ds = EpisodeDataset(out)
        assert len(ds.episodes) >= 1
        assert ds.verify() == []
        assert [e.seed for e in ds.episodes] == list(range(len(ds.episodes)))
    finally:
        subprocess.run(["umount", str(mount)])

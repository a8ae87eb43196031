"""The writer refuses bad episodes before touching the disk, refuses a second writer, and fails cleanly
on a full disk or an unwritable path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from polyact.contract import FeatureSpec
from polyact.data import DatasetWriter, EpisodeDataset, verify_dataset
from polyact.errors import DatasetError, UnknownNameError


def corrupt(episode, how: str):
    obs = episode.observations
    if how == "missing key":
        del obs["depth/wrist"]
    elif how == "extra key":
        obs["rgb/top"] = obs["rgb/corner"]
    elif how == "wrong dtype":
        obs["rgb/corner"] = obs["rgb/corner"].astype(np.float32)
    elif how == "wrong shape":
        obs["state"] = obs["state"][:, :4]
    elif how == "wrong length":
        obs["goal"] = obs["goal"][:-1]
    elif how == "nan action":
        episode.actions[2, 1] = np.nan
    elif how == "inf state":
        obs["state"][1, 0] = np.inf
    elif how == "no steps":
        episode.actions = episode.actions[:0]
    elif how == "unknown task":
        episode.task = "pusj"
    elif how == "extra not json":
        episode.extra = {"when": object()}
    elif how == "rewards not float32":
        episode.rewards = episode.rewards.astype(np.float64)
    return episode


BAD = {
    "missing key": r"observations lack \['depth/wrist'\]",
    "extra key": r"observations have unexpected keys \['rgb/top'\]",
    "wrong dtype": r"observations\['rgb/corner'\] is float32\[6, 16, 16, 3\], expected uint8\[6, 16, 16, 3\]",
    "wrong shape": r"observations\['state'\] is float32\[6, 4\], expected float32\[6, 5\]",
    "wrong length": r"observations\['goal'\] is float32\[5, 3\], expected float32\[6, 3\] \(T = 6 from actions\)",
    "nan action": r"actions has a non-finite value at index \[2, 1\]",
    "inf state": r"observations\['state'\] has a non-finite value at index \[1, 0\]",
    "no steps": r"actions must be a \(T, A\) array with T >= 1",
    "unknown task": r"task 'pusj' is not one of the dataset's tasks; closest first: push",
    "extra not json": r"extra must be a JSON-serialisable dict",
    "rewards not float32": r"rewards is float64\[6\], expected float32\[6\]",
}


@pytest.mark.parametrize("how", list(BAD))
def test_bad_episode_is_refused_before_anything_is_written(tmp_path, create_writer, make_episode, how):
    with create_writer(tmp_path / "ds") as writer:
        with pytest.raises(DatasetError, match="episode rejected: " + BAD[how]):
            writer.add_episode(corrupt(make_episode(6, 0), how))
        assert os.listdir(tmp_path / "ds" / "episodes") == []
        assert writer.add_episode(make_episode(6, 0)) == 0
    assert len(EpisodeDataset(tmp_path / "ds")) == 1


def test_create_refuses_a_non_empty_directory(tmp_path, create_writer, dataset):
    path, _ = dataset
    with pytest.raises(DatasetError, match=r"not empty \(it is a dataset: DatasetWriter.open appends to it\)"):
        create_writer(path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="refusing to create a dataset in .*other: the directory is not empty"):
        create_writer(tmp_path / "other")
    (tmp_path / "empty").mkdir()
    create_writer(tmp_path / "empty").close()  # an empty directory is fine


def test_create_checks_its_arguments(tmp_path, create_writer, spec):
    with pytest.raises(UnknownNameError, match="unknown image compression 'zstandard'; .*zstd"):
        create_writer(tmp_path / "a", image_compression="zstandard")
    with pytest.raises(UnknownNameError, match="unknown depth storage 'uint16'; .*uint16_mm"):
        create_writer(tmp_path / "a", depth_storage="uint16")
    with pytest.raises(DatasetError, match="feature 'state' is FeatureSpec.*, but the env_spec says"):
        create_writer(tmp_path / "b", features={**spec.features(), "state": FeatureSpec("float32", (6,))})
    with pytest.raises(DatasetError, match="fps must be a positive number"):
        create_writer(tmp_path / "c", fps=0)
    assert not (tmp_path / "a").exists()  # nothing is created before the arguments pass


def test_create_under_a_regular_file_is_refused(tmp_path, create_writer):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(DatasetError, match=r"cannot create a dataset at .*file/ds: Not a directory"):
        create_writer(tmp_path / "file" / "ds")


def mount_tmpfs(where, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_create_on_a_read_only_filesystem_is_refused(tmp_path, create_writer):
    # tests run as root, whom file permissions do not stop: a read-only mount does
    if not mount_tmpfs(tmp_path / "ro", "ro,size=1m"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        with pytest.raises(DatasetError, match=r"cannot create a dataset at .*ro/ds: Read-only file system"):
            create_writer(tmp_path / "ro" / "ds")
    finally:
        subprocess.run(["umount", str(tmp_path / "ro")], check=True)


def test_a_second_writer_is_refused_until_the_first_closes(dataset):
    path, _ = dataset
    first = DatasetWriter.open(path)
    with pytest.raises(DatasetError, match=rf"being written by another process \(pid {os.getpid()}\).*\.writer\.lock"):
        DatasetWriter.open(path)
    first.close()
    with DatasetWriter.open(path) as second:
        assert second.num_episodes == 6
    with pytest.raises(DatasetError, match="writer of .* is closed"):
        second.add_episode(None)


def test_a_failed_manifest_update_rolls_the_episode_back(dataset, make_episode):
    path, _ = dataset
    with DatasetWriter.open(path) as writer:
        (path / "meta.json.tmp").mkdir()  # now the manifest's temporary file cannot be written
        with pytest.raises(
            DatasetError,
            match=r"while writing episode 6 to .*; nothing of episode 6 was committed, "
            r"the 6 earlier episodes are intact",
        ):
            writer.add_episode(make_episode(4, 6))
        assert not (path / "episodes" / "episode_000006.h5").exists()
        assert writer.num_episodes == 6
        (path / "meta.json.tmp").rmdir()
        assert writer.add_episode(make_episode(4, 6)) == 6
    ds = EpisodeDataset(path)
    assert len(ds) == 7 and ds.repairs == []


FILL = textwrap.dedent("""
    import json, resource, signal, sys
    from polyact.data import DatasetWriter
    from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
    from polyact.errors import DatasetError

    path, file_limit = sys.argv[1], int(sys.argv[2])
    if file_limit:  # writes past the limit fail with EFBIG instead of killing us with SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
    spec = synthetic_env_spec(height=64, width=64)
    writer = DatasetWriter.create(path, features=spec.features(), action=spec.action_feature(), env_spec=spec,
                                  fps=10.0, tasks={t: [] for t in spec.tasks})
    committed = 0
    try:
        for seed in range(1000):
            # with a file-size limit, the fourth episode is the one too big to fit
            writer.add_episode(synthetic_episode(spec, 40 if file_limit and seed == 3 else 3, seed=seed))
            committed += 1
    except DatasetError as e:
        print(json.dumps({"committed": committed, "error": str(e)}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["tmpfs", "file size limit"])
def test_full_disk_fails_cleanly_and_keeps_earlier_episodes(tmp_path, how):
    if how == "tmpfs":
        if not mount_tmpfs(tmp_path / "small", "size=1200k"):
            pytest.skip("cannot mount a small tmpfs here (needs root); the file size limit case covers this")
        path, limit, words = tmp_path / "small" / "ds", 0, "disk full"
    else:
        path, limit, words = tmp_path / "ds", 1_000_000, "file size limit reached"
    try:
        child = subprocess.run(
            [sys.executable, "-c", FILL, str(path), str(limit)], capture_output=True, text=True, timeout=120
        )
        assert child.returncode == 0, child.stderr
        result = json.loads(child.stdout)
        n = result["committed"]
        assert n >= 2
        assert result["error"].startswith(f"{words} (")
        assert result["error"].endswith(
            f"while writing episode {n} to {path}; nothing of episode {n} was "
            f"committed, the {n} earlier episodes are intact"
        )
        assert not [p for p in path.rglob("*.tmp")]
        ds = EpisodeDataset(path)
        assert len(ds) == n and ds.repairs == []
        assert verify_dataset(path) == []
        assert ds.stats["state"]["count"] == 3 * n
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", str(tmp_path / "small")], check=True)

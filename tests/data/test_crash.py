"""Crash safety with real processes: writers killed by SIGKILL at each point of a commit and at random
moments, a manifest that missed a committed episode, torn temporary files, and a reader following a live
writer."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

from polyact.data import DatasetWriter, EpisodeDataset, verify_dataset
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.faults import ENV

CRASH_SPEC = synthetic_env_spec(height=32, width=32)


def crash_episode(seed: int):
    return synthetic_episode(CRASH_SPEC, 8 + seed % 7, seed=seed)


def create_crash_dataset(path) -> None:
    DatasetWriter.for_spec(path, CRASH_SPEC).close()


APPEND = textwrap.dedent("""
    import sys
    from polyact.data import DatasetWriter
    from polyact.data.synthetic import synthetic_env_spec, synthetic_episode

    spec = synthetic_env_spec(height=32, width=32)  # CRASH_SPEC, and crash_episode below
    with DatasetWriter.open(sys.argv[1]) as writer:
        while writer.num_episodes < int(sys.argv[2]):
            writer.add_episode(synthetic_episode(spec, 8 + writer.num_episodes % 7, seed=writer.num_episodes))
""")


def append_until(path, total: int, fault: str | None = None) -> subprocess.CompletedProcess:
    """A writer process that appends crash episodes until the dataset holds `total`, or dies at `fault`."""
    env = {k: v for k, v in os.environ.items() if k != ENV} | ({ENV: fault} if fault else {})
    command = [sys.executable, "-c", APPEND, str(path), str(total)]
    return subprocess.run(command, env=env, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("fault", "listed"),
    [
        ("data.episode_file_committed:3", 2),  # episode 2's file is in place, the manifest lists 0 and 1
        ("data.episode_committed:3", 3),  # episode 2 is fully committed
    ],
)
def test_writer_killed_at_each_point_of_a_commit_resumes_exactly(tmp_path, assert_same_episode, fault, listed):
    path = tmp_path / "ds"
    create_crash_dataset(path)
    killed = append_until(path, 6, fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(list((path / "episodes").glob("episode_*.h5"))) == 3
    assert len(json.loads((path / "meta.json").read_text())["episodes"]) == listed
    assert not list(path.rglob("*.tmp"))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = EpisodeDataset(path)
    assert len(caught) == len(ds.repairs) == 3 - listed
    assert all("added back episode 2" in r for r in ds.repairs)
    assert len(ds) == 3
    for i in range(3):  # every episode committed before the kill, in full
        assert_same_episode(ds.load_episode(i), crash_episode(i))

    resumed = append_until(path, 6)  # the same command again
    assert resumed.returncode == 0, resumed.stderr
    reference = tmp_path / "uninterrupted"
    create_crash_dataset(reference)
    with DatasetWriter.open(reference) as writer:
        for i in range(6):
            writer.add_episode(crash_episode(i))
    ds, ref = EpisodeDataset(path), EpisodeDataset(reference)
    assert ds.repairs == [] and ds.episodes == ref.episodes
    for i in range(6):
        assert_same_episode(ds.load_episode(i), crash_episode(i))
    assert ds.stats.keys() == ref.stats.keys()
    for key, stats in ds.stats.items():
        assert stats["count"] == ref.stats[key]["count"]
        np.testing.assert_allclose(stats["mean"], ref.stats[key]["mean"], rtol=1e-12)
    assert verify_dataset(path) == []


def test_a_misspelt_fault_point_fails_instead_of_never_firing(tmp_path):
    create_crash_dataset(tmp_path / "ds")
    typo = append_until(tmp_path / "ds", 1, "data.episode_comitted:3")
    assert typo.returncode == 1 and "closest first: data.episode_committed" in typo.stderr
    zero = append_until(tmp_path / "ds", 1, "data.episode_committed:0")
    assert zero.returncode == 1 and "integer >= 1" in zero.stderr
    assert len(EpisodeDataset(tmp_path / "ds")) == 0


def append_forever(path, fd: int) -> None:
    """Runs in a forked child: append episodes, reporting each commit on the pipe, until killed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # repairs of the previous child's debris
        writer = DatasetWriter.open(path)
    os.write(fd, b"open\n")
    while True:
        index = writer.add_episode(crash_episode(writer.num_episodes))
        os.write(fd, f"{index}\n".encode())


@pytest.mark.slow
def test_writer_killed_at_random_moments_loses_nothing_committed(tmp_path, assert_same_episode):
    """Where the fault points cannot reach: inside the episode file's write (a torn .tmp), fsync, the
    manifest's own write. Each kill comes a random delay after the child's first commit, and what is
    asserted holds whenever it lands: the timing picks the moment, it never decides the outcome."""
    path = tmp_path / "ds"
    create_crash_dataset(path)
    rng = np.random.default_rng(0)
    context = multiprocessing.get_context("fork")
    committed = checked = 0
    for _ in range(16):
        read_end, write_end = os.pipe()
        child = context.Process(target=append_forever, args=(path, write_end))
        child.start()
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            assert pipe.readline() == "open\n"
            first = pipe.readline()  # one commit in this round, however slow the machine
            time.sleep(rng.uniform(0.0, 0.1))  # then anywhere: building a file, fsync, rename, manifest
            os.kill(child.pid, signal.SIGKILL)
            child.join()
            reported = [int(line) for line in (first + pipe.read()).split()]
        assert child.exitcode == -signal.SIGKILL and reported
        committed = reported[-1] + 1
        torn = list(path.rglob("*.tmp"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = EpisodeDataset(path)
        # every reported commit is there; one more if the kill fell between the rename and the report
        assert committed <= len(ds) <= committed + 1
        assert bool(torn) == any("torn write" in r for r in ds.repairs)
        assert len(caught) == len(ds.repairs)
        for i in range(checked, len(ds)):
            assert_same_episode(ds.load_episode(i), crash_episode(i))
        committed = checked = len(ds)
    assert committed >= 16  # each round committed at least once
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DatasetWriter.open(path).close()  # repairs what the last child left
    ds = EpisodeDataset(path)
    assert ds.repairs == [] and len(ds) == committed and ds.stats["state"]["count"] == ds.num_steps
    assert verify_dataset(path) == []


def test_committed_episode_missing_from_the_manifest_is_added_back(
    tmp_path, dataset, create_writer, assert_same_episode
):
    # The state a kill between the episode's rename and the manifest update leaves: a complete
    # episode file that meta.json does not list. Produce it by copying the committed file of a twin.
    full, episodes = dataset
    path = tmp_path / "twin"
    with create_writer(path) as writer:
        for episode in episodes[:5]:
            writer.add_episode(episode)
    shutil.copy(full / "episodes" / "episode_000005.h5", path / "episodes")

    with pytest.warns(UserWarning, match="added back episode 5 .*the writer was killed in between"):
        ds = EpisodeDataset(path)
    assert len(ds) == 6 and len(ds.repairs) == 1
    assert_same_episode(ds.load_episode(5), episodes[5])
    reference = EpisodeDataset(full).stats
    for key, stats in ds.stats.items():  # its statistics are merged back in too
        assert stats["count"] == reference[key]["count"]
        np.testing.assert_allclose(stats["mean"], reference[key]["mean"], rtol=1e-12)

    with pytest.warns(UserWarning, match="added back episode 5"):
        writer = DatasetWriter.open(path)  # the writer makes the repair permanent
    with writer:
        assert writer.add_episode(episodes[0]) == 6
    assert EpisodeDataset(path).repairs == []


def test_torn_writes_are_ignored_by_readers_and_removed_by_writers(dataset, make_episode):
    path, _ = dataset
    whole = (path / "episodes" / "episode_000002.h5").read_bytes()
    (path / "episodes" / ".episode_000006.h5.tmp").write_bytes(whole[: len(whole) // 2])
    (path / "meta.json.tmp").write_text((path / "meta.json").read_text()[:100])

    with pytest.warns(UserWarning, match=r"ignored 2 torn write\(s\).*\.episode_000006\.h5\.tmp, meta\.json\.tmp"):
        ds = EpisodeDataset(path)
    assert len(ds) == 6 and (path / "meta.json.tmp").exists()
    with pytest.warns(UserWarning, match=r"removed 2 torn write\(s\)"):
        writer = DatasetWriter.open(path)
    with writer:
        assert writer.repairs and not list(path.rglob("*.tmp"))
        assert writer.add_episode(make_episode(3, 6)) == 6
    assert EpisodeDataset(path).repairs == []


FOLLOW = textwrap.dedent("""
    import sys
    from polyact.data import DatasetWriter
    from polyact.data.synthetic import synthetic_env_spec, synthetic_episode

    spec = synthetic_env_spec()
    with DatasetWriter.open(sys.argv[1]) as writer:
        for seed in (100, 101):
            print(writer.add_episode(synthetic_episode(spec, 4, seed=seed)), flush=True)
            sys.stdin.readline()  # wait for the test to look
""")


@pytest.mark.slow
def test_a_reader_follows_a_live_writer(dataset, spec, assert_same_episode):
    path, _ = dataset
    reader = EpisodeDataset(path)
    reader.window(5, 0, 2, 2)  # an open file handle must not be disturbed by appends
    child = subprocess.Popen(
        [sys.executable, "-c", FOLLOW, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline() == "6\n"
        # a temporary file while the writer lives is its work in progress: nothing to report
        (path / "episodes" / ".episode_000099.h5.tmp").write_bytes(b"in progress")
        assert len(reader) == 6
        reader.refresh()
        assert len(reader) == 7 and reader.repairs == []
        assert_same_episode(reader.load_episode(6), synthetic_episode(spec, 4, seed=100))
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline() == "7\n"
        reader.refresh()
        assert len(reader) == 8 and reader.window(7, 3, 2, 2)["timestep"] == 3
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait() == 0
    finally:
        child.kill()
    with pytest.warns(UserWarning, match=r"ignored 1 torn write"):  # now nobody is writing it
        reader.refresh()
    assert reader.window(5, 0, 2, 2)["episode_index"] == 5

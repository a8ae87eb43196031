"""WindowDataset in torch DataLoaders (multi-worker = single-process) and the task-balanced sampler."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from polyact.data import EpisodeDataset, TaskBalancedSampler, WindowDataset, collate_windows
from polyact.data.handles import HandleCache
from polyact.errors import ConfigError


def assert_same_batch(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key, value in a.items():
        if isinstance(value, list):
            assert value == b[key], key
        else:
            assert value.dtype == b[key].dtype, key
            torch.testing.assert_close(value, b[key], rtol=0, atol=0, msg=key)


def test_items_cover_every_step_of_the_selected_episodes(dataset):
    path, episodes = dataset
    windows = WindowDataset(path, history=2, chunk=4, episodes=[4, 0])
    n4, n0 = episodes[4].length, episodes[0].length
    assert len(windows) == n4 + n0
    eps, steps = windows.locate(np.arange(len(windows)))
    assert eps.tolist() == [4] * n4 + [0] * n0
    assert steps.tolist() == list(range(n4)) + list(range(n0))
    ds = windows.dataset
    assert windows.item_tasks().tolist() == [ds.task_index(ds.episodes[e].task) for e in eps]
    item = windows[n4 + 2]  # episode 0, step 2
    assert (int(item["episode_index"]), int(item["timestep"])) == (0, 2)
    assert item["obs/rgb/corner"].dtype == torch.uint8 and item["obs/rgb/corner"].shape == (2, 16, 16, 3)
    assert isinstance(item["instruction"], str)
    np.testing.assert_array_equal(item["obs/state"].numpy(), episodes[0].observations["state"][1:3])
    with pytest.raises(ConfigError, match="episode 9 is not in"):
        WindowDataset(path, 2, 4, episodes=[9])


@pytest.mark.slow
def test_multi_worker_loader_returns_the_single_process_windows(dataset):
    path, _ = dataset
    windows = WindowDataset(EpisodeDataset(path), history=3, chunk=5, keys=["rgb/wrist", "state", "depth/corner"])
    windows[0]  # the parent opens a file before the workers fork: they must not use its handle

    def batches(workers: int, collate) -> list[dict]:
        loader = DataLoader(windows, batch_size=8, shuffle=False, num_workers=workers, collate_fn=collate)
        return list(loader)

    reference = batches(0, collate_windows)
    assert sum(len(b["timestep"]) for b in reference) == len(windows)
    for workers, collate in ((2, collate_windows), (2, None), (0, None)):
        got = batches(workers, collate)
        assert len(got) == len(reference)
        for a, b in zip(got, reference, strict=True):
            assert_same_batch(a, b)
    last_episode = len(windows.dataset) - 1
    last_step = windows.dataset.episodes[last_episode].length - 1
    single = windows.dataset.window(last_episode, last_step, 3, 5, keys=["rgb/wrist", "state", "depth/corner"])
    for key, value in single.items():  # the loader's windows are EpisodeDataset.window's
        last = reference[-1][key][-1]
        assert last == value if isinstance(value, str) else np.array_equal(last.numpy(), value), key


def storage_inode(tensor: torch.Tensor) -> int:
    """Which shared-memory file holds a tensor that came from a DataLoader worker."""
    fd, _ = tensor.untyped_storage()._share_fd_cpu_()
    return os.fstat(fd).st_ino


@pytest.mark.slow
def test_worker_buffers_are_reused_only_once_batches_are_dropped(dataset):
    path, _ = dataset
    windows = WindowDataset(path, history=2, chunk=3)
    reference = list(DataLoader(windows, batch_size=1, collate_fn=collate_windows))
    assert len(reference) > 2 * 8 + 4  # more batches per worker than it has buffers

    def loader():
        return DataLoader(windows, batch_size=1, num_workers=2, collate_fn=collate_windows)

    inodes = []
    for batch, expected in zip(loader(), reference, strict=True):  # each batch is checked, then dropped
        assert_same_batch(batch, expected)
        inodes.append(storage_inode(batch["action"]))
    assert len(set(inodes)) < len(inodes)  # buffers came back for reuse

    held = list(loader())  # a loop that keeps its batches: nothing it holds is overwritten
    for batch, expected in zip(held, reference, strict=True):
        assert_same_batch(batch, expected)
    assert len({storage_inode(b["action"]) for b in held}) == len(held)


def test_handles_are_reopened_after_a_fork(dataset):
    path, _ = dataset
    cache = HandleCache(capacity=2)
    opened = []

    def opener():
        opened.append(os.getpid())
        return EpisodeDataset(path)._open(0)

    cache.get(0, opener)
    cache.get(0, opener)
    assert opened == [os.getpid()]
    pid = os.fork()
    if pid == 0:  # the child: the parent's handle is not reused
        cache.get(0, opener)
        os._exit(0 if opened[-1] == os.getpid() and len(opened) == 2 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    clone = pickle.loads(pickle.dumps(cache))  # and handles never travel in a pickle (spawned workers)
    clone.get(0, opener)
    assert len(opened) == 2


def test_window_dataset_pickles_for_spawned_workers(dataset):
    path, _ = dataset
    windows = WindowDataset(path, 2, 3)
    first = windows.__getitems__([0, 7, 20])
    clone = pickle.loads(pickle.dumps(windows))
    assert_same_batch(collate_windows(clone.__getitems__([0, 7, 20])), collate_windows(first))


# --- the sampler ------------------------------------------------------------------------------------
def skewed_labels() -> np.ndarray:
    return np.repeat(np.arange(4), [2000, 300, 40, 3])  # tasks with very different numbers of windows


def test_every_task_is_drawn_equally_often_and_its_windows_uniformly():
    labels = skewed_labels()
    sampler = TaskBalancedSampler(labels, num_samples=40_000, seed=3)
    draws = np.array(list(sampler))
    assert len(draws) == len(sampler) == 40_000
    shares = np.bincount(labels[draws], minlength=4) / len(draws)
    np.testing.assert_allclose(shares, 0.25, atol=0.015)
    within = np.bincount(draws[labels[draws] == 3] - 2340, minlength=3)  # the 3-window task's items
    assert within.min() > 0.8 * within.mean()


def test_sampler_resumes_the_exact_sequence():
    labels = skewed_labels()
    first = TaskBalancedSampler(labels, num_samples=1000, seed=7)
    epoch0 = list(first)
    epoch1 = list(first)  # epochs advance by themselves
    assert epoch0 != epoch1
    assert list(TaskBalancedSampler(labels, num_samples=1000, seed=8)) != epoch0

    interrupted = TaskBalancedSampler(labels, num_samples=1000, seed=7)
    it = iter(interrupted)
    seen = [next(it) for _ in range(337)]
    state = interrupted.state_dict()
    assert seen == epoch0[:337] and state["consumed"] == 337 and state["epoch"] == 0

    resumed = TaskBalancedSampler(labels, num_samples=1000, seed=0)
    resumed.load_state_dict(state)
    assert list(resumed) == epoch0[337:]
    assert list(resumed) == epoch1  # and the next epoch follows
    # a DataLoader prefetches: the trainer passes how many samples it really consumed
    resumed.load_state_dict(interrupted.state_dict(consumed=300))
    assert list(resumed) == epoch0[300:]
    resumed.set_epoch(1)
    assert list(resumed) == epoch1
    with pytest.raises(ConfigError, match="num_items"):
        TaskBalancedSampler(labels[:-1], num_samples=1000).load_state_dict(state)


def test_replicas_get_disjoint_shares_of_each_epoch():
    labels = skewed_labels()
    whole = list(TaskBalancedSampler(labels, num_samples=900, seed=5))
    shares = [list(TaskBalancedSampler(labels, num_samples=900, seed=5, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shares] == [300, 300, 300]
    for rank, share in enumerate(shares):
        assert share == whole[rank::3]
    with pytest.raises(ConfigError, match="rank"):
        TaskBalancedSampler(labels, num_replicas=2, rank=2)


def test_sampler_draws_window_dataset_items_by_task(dataset):
    path, _ = dataset
    windows = WindowDataset(path, 2, 4)
    sampler = TaskBalancedSampler(windows, num_samples=3000, seed=0)
    tasks = windows.item_tasks()[list(sampler)]
    np.testing.assert_allclose(np.bincount(tasks) / len(tasks), 1 / 3, atol=0.04)
    loader = DataLoader(windows, batch_size=16, sampler=sampler, collate_fn=collate_windows)
    batch = next(iter(loader))
    assert batch["action"].shape == (16, 4, 4)

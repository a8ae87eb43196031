"""The window contract, checked against hand-computed windows at the start, middle and end of episodes."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.data import EpisodeDataset
from polyact.errors import ConfigError, UnknownNameError

F, T = False, True


@pytest.fixture
def counting(tmp_path, create_writer, make_episode):
    """Episodes whose step t has state = t, action = 100 + t and every pixel = t: windows are readable by eye."""
    path = tmp_path / "ds"
    with create_writer(path) as writer:
        for seed, length in enumerate((10, 1)):
            episode = make_episode(length, seed, task="push")
            steps = np.arange(length, dtype=np.float32)
            episode.observations["state"][:] = steps[:, None]
            episode.observations["rgb/corner"][:] = np.arange(length, dtype=np.uint8)[:, None, None, None]
            episode.actions[:] = 100 + steps[:, None]
            writer.add_episode(episode)
    return EpisodeDataset(path)


# (episode, t, history, chunk) -> (state steps, obs_is_pad, action steps, action_is_pad), written out by hand
CASES = {
    (0, 0, 3, 4): ([0, 0, 0], [T, T, F], [0, 1, 2, 3], [F, F, F, F]),
    (0, 1, 3, 4): ([0, 0, 1], [T, F, F], [1, 2, 3, 4], [F, F, F, F]),
    (0, 0, 2, 16): ([0, 0], [T, F], list(range(10)) + [9] * 6, [F] * 10 + [T] * 6),
    (0, 5, 2, 4): ([4, 5], [F, F], [5, 6, 7, 8], [F, F, F, F]),
    (0, 5, 3, 16): ([3, 4, 5], [F, F, F], [5, 6, 7, 8, 9] + [9] * 11, [F] * 5 + [T] * 11),
    (0, 8, 2, 4): ([7, 8], [F, F], [8, 9, 9, 9], [F, F, T, T]),
    (0, 9, 3, 4): ([7, 8, 9], [F, F, F], [9, 9, 9, 9], [F, T, T, T]),
    (0, 9, 2, 16): ([8, 9], [F, F], [9] * 16, [F] + [T] * 15),
    (1, 0, 3, 4): ([0, 0, 0], [T, T, F], [0, 0, 0, 0], [F, T, T, T]),
}


@pytest.mark.parametrize("case", list(CASES), ids=[f"ep{e}-t{t}-h{h}-k{k}" for e, t, h, k in CASES])
def test_window_matches_hand_computed(counting, case):
    episode, t, history, chunk = case
    states, obs_pad, actions, action_pad = CASES[case]
    w = counting.window(episode, t, history, chunk)
    assert set(w) == {
        *(f"obs/{k}" for k in counting.features),
        "obs_is_pad",
        "action",
        "action_is_pad",
        "instruction",
        "task_index",
        "episode_index",
        "timestep",
    }
    np.testing.assert_array_equal(w["obs/state"], np.repeat(np.array(states, np.float32)[:, None], 5, axis=1))
    np.testing.assert_array_equal(w["obs/rgb/corner"][:, 0, 0, 0], states)
    assert w["obs/rgb/corner"].shape == (history, 16, 16, 3) and w["obs/rgb/corner"].dtype == np.uint8
    assert w["obs/depth/wrist"].shape == (history, 16, 16) and w["obs/depth/wrist"].dtype == np.float32
    np.testing.assert_array_equal(w["obs_is_pad"], obs_pad)
    assert w["obs_is_pad"].dtype == bool
    assert w["action"].shape == (chunk, 4) and w["action"].dtype == np.float32
    np.testing.assert_array_equal(w["action"][:, 0], 100 + np.array(actions, np.float32))
    np.testing.assert_array_equal(w["action_is_pad"], action_pad)
    assert w["instruction"] == counting.episodes[episode].instruction
    assert w["task_index"] == sorted(counting.tasks).index("push") and w["task_index"].dtype == np.int64
    assert (w["episode_index"], w["timestep"]) == (episode, t)


def test_padding_repeats_real_steps_of_every_feature(counting):
    w = counting.window(0, 0, 3, 2)
    for key in counting.features:
        arr = w[f"obs/{key}"]
        np.testing.assert_array_equal(arr[0], arr[2], err_msg=key)
        np.testing.assert_array_equal(arr[1], arr[2], err_msg=key)
    whole = counting.episode_arrays(0)
    np.testing.assert_array_equal(w["obs/extrinsics/corner"][2], whole["obs/extrinsics/corner"][0])


def test_keys_select_features(counting):
    w = counting.window(0, 4, 2, 4, keys=["rgb/corner", "state"])
    assert sorted(k for k in w if k.startswith("obs/")) == ["obs/rgb/corner", "obs/state"]
    with pytest.raises(UnknownNameError, match="rgb/corner"):  # closest valid names first
        counting.window(0, 4, 2, 4, keys=["rgb/coner"])


def test_batched_windows_equal_single_windows(counting):
    episodes, steps = [0, 1, 0, 0], [9, 0, 0, 4]
    batch = counting.windows(episodes, steps, 3, 5)
    for b, (e, t) in enumerate(zip(episodes, steps, strict=True)):
        single = counting.window(e, t, 3, 5)
        for name, value in single.items():
            if isinstance(value, str):
                assert batch[name][b] == value
            else:
                np.testing.assert_array_equal(batch[name][b], value, err_msg=name)


def test_out_of_range_requests_are_refused(counting):
    with pytest.raises(IndexError, match="timestep 10 is outside episode 0 of length 10"):
        counting.window(0, 10, 2, 4)
    with pytest.raises(IndexError, match="episode 2"):
        counting.window(2, 0, 2, 4)
    with pytest.raises(ConfigError, match="history and chunk"):
        counting.window(0, 0, 0, 4)


@pytest.mark.parametrize("budget_kind", [0, "rgb only", "everything"])
def test_windows_are_the_same_whether_features_are_held_in_memory_or_read_from_disk(dataset, budget_kind):
    path, _ = dataset
    on_disk = EpisodeDataset(path, memory_budget=0)
    probe = EpisodeDataset(path)
    rgb_bytes = probe.num_steps * int(np.prod(probe.features["rgb/corner"].shape))  # uint8
    budget = {0: 0, "rgb only": rgb_bytes, "everything": 1 << 30}[budget_kind]
    held = EpisodeDataset(path, memory_budget=budget)
    rng = np.random.default_rng(0)
    episodes = rng.integers(0, len(held), 40)
    steps = [int(rng.integers(0, held.episodes[e].length)) for e in episodes]
    keys = ["rgb/corner", "depth/corner", "state"]
    want = on_disk.windows(episodes, steps, 3, 4, keys)
    got = held.windows(episodes, steps, 3, 4, keys)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    # Features are admitted in the order first read, while the budget lasts.
    assert held.held_in_memory("rgb/corner") == (budget_kind != 0)
    assert held.held_in_memory("depth/corner") == (budget_kind == "everything")


def test_a_feature_held_in_memory_is_read_once_per_episode(dataset):
    path, _ = dataset
    ds = EpisodeDataset(path)
    ds.windows([0, 0, 0], [0, 3, 6], 2, 2, ["rgb/corner"])
    handle = ds._handle(0)
    assert set(handle.held) >= {"obs/rgb/corner"}
    assert "obs/rgb/wrist" not in handle.held  # never read: never held
    on_disk = EpisodeDataset(path, memory_budget=0)
    on_disk.windows([0], [3], 2, 2, ["rgb/corner"])
    assert "obs/rgb/corner" not in on_disk._handle(0).held
    # Held arrays live in open files' handles: not when the files cannot all stay open.
    assert not EpisodeDataset(path, max_open_files=len(ds) - 1).held_in_memory("rgb/corner")


def test_the_dataset_says_why_it_reads_from_disk(dataset):
    path, _ = dataset
    keys = ["rgb/corner", "state"]
    assert EpisodeDataset(path).disk_read_reason(keys) is None
    few_files = EpisodeDataset(path, max_open_files=2)
    assert few_files.disk_read_reason(keys) == f"its {len(few_files)} episodes are more than the 2 files kept open"
    reason = EpisodeDataset(path, memory_budget=0).disk_read_reason(keys)
    assert reason.startswith("rgb/corner, state do not fit") and "the memory budget is 0 MiB" in reason


def test_a_negative_memory_budget_is_refused(dataset):
    path, _ = dataset
    with pytest.raises(ConfigError, match="memory_budget is in bytes and must be >= 0, got -1"):
        EpisodeDataset(path, memory_budget=-1)


def test_future_frames_are_the_steps_ahead_or_the_last_one_padded(counting):
    """Episode 0 has 10 steps (pixels = step), episode 1 one."""
    from polyact.data import WindowDataset

    batch = counting.windows([0, 0, 0, 1], [2, 6, 9, 0], 1, 1, ["state"], future=3, future_keys=["rgb/corner"])
    np.testing.assert_array_equal(batch["future/rgb/corner"][:, 0, 0, 0], [5, 9, 9, 0])
    np.testing.assert_array_equal(batch["future_is_pad"], [F, F, T, T])  # 6 + 3 = 9 is the last step itself
    assert "future/state" not in batch
    windows = WindowDataset(counting, history=1, chunk=1, keys=["state"], future=3, future_keys=["rgb/corner"])
    assert windows[2]["future/rgb/corner"][0, 0, 0] == 5 and not windows[2]["future_is_pad"]
    with pytest.raises(ConfigError, match="future must be >= 0"):
        counting.windows([0], [0], 1, 1, ["state"], future=-1)

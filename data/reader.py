"""EpisodeDataset: read a polyact dataset, whole episodes or training windows, straight from the files.

Nothing is loaded up front but the manifest: windows are h5py slices of the episode files, so a
dataset larger than memory trains fine. Episode files are checked against the manifest the first time
they are opened (keeping open fast for thousands of episodes); `verify()` checks every file and chunk.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from polyact.contract import EnvSpec, FeatureSpec
from polyact.data.codecs import CODEC_ATTR, offsets_path
from polyact.data.episode import Episode
from polyact.data.format import (
    ACTION,
    REWARD,
    STATS,
    SUCCESS,
    EpisodeRecord,
    check_episode_file,
    obs_path,
    open_episode_file,
)
from polyact.data.handles import CHUNK_CACHE_BYTES, EpisodeHandle, HandleCache
from polyact.data.manifest import Manifest
from polyact.data.recovery import reconcile
from polyact.data.stats import merge_into, stats_from_dict
from polyact.errors import ConfigError, DatasetError, unknown_name

# Per process: the quickstart's 64x64 RGB (~280 MB) fits; a DataLoader with 8 workers holds at most 8x.
DEFAULT_MEMORY_BUDGET = 512 << 20


class EpisodeDataset:
    """A dataset opened for reading; safe to use while one writer appends (see `refresh`).

    Each process keeps up to `max_open_files` episode files open (about 0.5 MiB each). Opening one
    costs a few milliseconds, two orders of magnitude more than a window, so random-order training is
    fastest when every episode fits: raise it for datasets with more episodes (and the file limit,
    `ulimit -n`, with it).

    Windows read images frame by frame from the files, unless the whole of a feature, over every
    episode, fits in what is left of `memory_budget` bytes (per process) and every episode file can stay
    open: then each episode's array is read once and windows are sliced from memory, which makes a
    batch about 3x cheaper to assemble (bench/README.md). Features are admitted in the order they are
    first read, so the budget is never exceeded. 0 keeps everything on disk.
    """

    def __init__(
        self, path: str | os.PathLike, *, max_open_files: int = 512, memory_budget: int = DEFAULT_MEMORY_BUDGET
    ):
        if memory_budget < 0:
            raise ConfigError(f"memory_budget is in bytes and must be >= 0, got {memory_budget}")
        self.path = Path(path)
        self.memory_budget = memory_budget
        self._handles = HandleCache(max_open_files)
        self._validated: set[int] = set()
        self.repairs: list[str] = []
        self._load()

    def _load(self) -> None:
        manifest = Manifest.load(self.path)
        self.repairs = reconcile(self.path, manifest, writer=False)
        self._manifest = manifest
        self._task_index = {task: i for i, task in enumerate(sorted(manifest.tasks))}
        self._stats: dict[str, dict[str, Any]] | None = None
        self._in_memory: dict[str, bool] = {}  # per feature: read whole, or frame by frame

    def refresh(self) -> None:
        """Re-read the manifest and the episode directory to see episodes committed since opening.

        Committed episode files never change, so open handles and earlier results stay valid. Features
        are admitted to memory afresh against the new size; arrays already held stay held.
        """
        self._load()

    def held_in_memory(self, key: str) -> bool:
        """Whether windows read feature `key` from memory (each episode's array read once) rather than
        frame by frame from the files; decided on first use, see the class."""
        if key not in self._in_memory:
            claimed = sum(self._feature_bytes(k) for k, held in self._in_memory.items() if held)
            self._in_memory[key] = (
                len(self) <= self._handles.capacity and claimed + self._feature_bytes(key) <= self.memory_budget
            )
        return self._in_memory[key]

    def disk_read_reason(self, keys: Sequence[str]) -> str | None:
        """Why windows of `keys` read some of them frame by frame from the files (deciding, as the first read
        would, in the order given), or None when every one is held in memory."""
        on_disk = [k for k in keys if not self.held_in_memory(k)]
        if not on_disk:
            return None
        if len(self) > self._handles.capacity:
            return f"its {len(self)} episodes are more than the {self._handles.capacity} files kept open"
        need = sum(self._feature_bytes(k) for k in keys)
        return (
            f"{', '.join(on_disk)} do not fit: the features take {need / 2**20:.0f} MiB, the memory budget is "
            f"{self.memory_budget / 2**20:.0f} MiB"
        )

    def _feature_bytes(self, key: str) -> int:
        """Bytes of feature `key` over every episode."""
        feature = self._manifest.features[key]
        return self.num_steps * math.prod(feature.shape) * np.dtype(feature.dtype).itemsize

    # --- what the manifest says ----------------------------------------------------------------
    @property
    def format_version(self) -> int:
        return self._manifest.format_version

    @property
    def created_by(self) -> str:
        return self._manifest.created_by

    @property
    def features(self) -> dict[str, FeatureSpec]:
        """Observation features (contract keys such as `rgb/corner`, `state`) and their per-step spec."""
        return dict(self._manifest.features)

    @property
    def action_feature(self) -> FeatureSpec:
        return self._manifest.action

    @property
    def env_spec(self) -> EnvSpec | None:
        return self._manifest.env_spec

    @property
    def fps(self) -> float:
        return self._manifest.fps

    @property
    def tasks(self) -> dict[str, list[str]]:
        """Every task of the dataset and the instructions its episodes were given."""
        return {t: list(i) for t, i in self._manifest.tasks.items()}

    @property
    def storage(self) -> dict[str, str]:
        """How the writer stored the frames: image_compression and depth_storage, and image_quality where the
        compression is lossy (docs/storage.md)."""
        return self._manifest.storage

    @property
    def metadata(self) -> dict[str, Any]:
        """Whatever the creator stored with the dataset, e.g. the collection settings."""
        return self._manifest.metadata

    @property
    def episodes(self) -> list[EpisodeRecord]:
        return list(self._manifest.episodes)

    @property
    def num_steps(self) -> int:
        return sum(e.length for e in self._manifest.episodes)

    def __len__(self) -> int:
        return len(self._manifest.episodes)

    def task_index(self, task: str) -> int:
        """The task's position in sorted(tasks): the `task_index` of windows."""
        if task not in self._task_index:
            raise unknown_name("task", task, self._task_index)
        return self._task_index[task]

    @property
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per feature (and "action"): mean, std, min, max, q01, q99 as float64 arrays, and count.

        Shapes follow polyact.data.stats: (3,) for rgb/*, () for depth/*, the per-step shape otherwise.
        A dataset without episodes has no statistics, and asking for one raises KeyError.
        """
        if self._stats is None:
            self._stats = _Statistics({key: s.summary() for key, s in self._manifest.stats.items()})
        return self._stats

    def observation_keys(self, keys: Sequence[str] | None) -> tuple[str, ...]:
        """`keys` checked against the features (all features when None)."""
        if keys is None:
            return tuple(self._manifest.features)
        if isinstance(keys, str):
            raise ConfigError(f"keys must be a list of feature names, got the string {keys!r}")
        for key in keys:
            if key not in self._manifest.features:
                raise unknown_name("feature", key, self._manifest.features)
        return tuple(keys)

    # --- reading -------------------------------------------------------------------------------
    def window(
        self, episode: int, t: int, history: int, chunk: int, keys: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """The training window at step `t` of `episode`:

        "obs/<key>"      (history, *shape)  steps t-history+1 .. t; steps before 0 repeat step 0
        "obs_is_pad"     bool (history,)    True for those repeated steps
        "action"         float32 (chunk, A) steps t .. t+chunk-1; steps past the end repeat the last
        "action_is_pad"  bool (chunk,)      True for those repeated steps
        "instruction"    str
        "task_index"     int64              position of the task in sorted(tasks)
        "episode_index"  int64, "timestep" int64
        """
        batch = self.windows([episode], [t], history, chunk, keys)
        return {name: value[0] for name, value in batch.items()}

    def window_layout(
        self,
        batch: int,
        history: int,
        chunk: int,
        keys: Sequence[str] | None = None,
        future: int = 0,
        future_keys: Sequence[str] = (),
    ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Shape and dtype of each array `windows` returns, e.g. to preallocate them in shared memory."""
        layout = {
            f"obs/{k}": (
                (batch, history, *self._manifest.features[k].shape),
                np.dtype(self._manifest.features[k].dtype),
            )
            for k in self.observation_keys(keys)
        }
        layout["obs_is_pad"] = ((batch, history), np.dtype(bool))
        layout["action"] = ((batch, chunk, *self._manifest.action.shape), np.dtype(self._manifest.action.dtype))
        layout["action_is_pad"] = ((batch, chunk), np.dtype(bool))
        if future:
            for k in self.observation_keys(future_keys):
                feature = self._manifest.features[k]
                layout[f"future/{k}"] = ((batch, *feature.shape), np.dtype(feature.dtype))
            layout["future_is_pad"] = ((batch,), np.dtype(bool))
        for name in ("task_index", "episode_index", "timestep"):
            layout[name] = ((batch,), np.dtype(np.int64))
        return layout

    def windows(
        self,
        episodes: Sequence[int] | np.ndarray,
        timesteps: Sequence[int] | np.ndarray,
        history: int,
        chunk: int,
        keys: Sequence[str] | None = None,
        *,
        out: dict[str, np.ndarray] | None = None,
        future: int = 0,
        future_keys: Sequence[str] = (),
    ) -> dict[str, Any]:
        """B windows at once, stacked: each array of `window` with a leading batch axis (B, ...), and
        "instruction" a list of B str. `out` may provide the arrays (see `window_layout`) to fill.

        With `future` > 0 each window also holds "future/<key>" (B, *shape) for `future_keys`: the
        observation `future` steps after t (the last one where the episode ends sooner), and
        "future_is_pad" (B,), True where it ends sooner (auxiliary future-frame prediction, GR-1)."""
        if history < 1 or chunk < 1:
            raise ConfigError(f"history and chunk must be >= 1, got history={history}, chunk={chunk}")
        keys = self.observation_keys(keys)
        episodes = np.asarray(episodes, dtype=np.int64)  # (B,)
        timesteps = np.asarray(timesteps, dtype=np.int64)  # (B,)
        records = [self._record(int(e)) for e in episodes]
        lengths = np.array([r.length for r in records], dtype=np.int64)  # (B,)
        bad = np.flatnonzero((timesteps < 0) | (timesteps >= lengths))
        if bad.size:
            b = bad[0]
            raise IndexError(f"timestep {timesteps[b]} is outside episode {episodes[b]} of length {lengths[b]}")
        if future < 0:
            raise ConfigError(f"future must be >= 0 steps, got {future}")
        future_keys = self.observation_keys(future_keys) if future else ()
        if out is None:
            layout = self.window_layout(len(episodes), history, chunk, keys, future, future_keys)
            out = {name: np.empty(shape, dtype) for name, (shape, dtype) in layout.items()}
        obs_out = [(obs_path(key), out[f"obs/{key}"], self.held_in_memory(key)) for key in keys]
        steps = zip(episodes.tolist(), timesteps.tolist(), lengths.tolist(), strict=True)
        for b, (episode, t, length) in enumerate(steps):
            handle = self._handle(episode)
            first = t - history + 1  # steps before 0 are padding: they repeat step 0
            lo = max(first, 0)
            for name, array, hold in obs_out:
                rows = array[b]  # (history, *shape)
                rows[lo - first :] = handle.rows(name, lo, t + 1, hold)
                rows[: lo - first] = rows[lo - first]
            hi = min(t + chunk, length)  # steps from `length` on are padding: they repeat the last action
            actions = out["action"][b]  # (chunk, A)
            actions[: hi - t] = handle.rows(ACTION, t, hi)
            actions[hi - t :] = actions[hi - t - 1]
            ahead = min(t + future, length - 1)
            for key in future_keys:
                out[f"future/{key}"][b] = handle.rows(obs_path(key), ahead, ahead + 1, self.held_in_memory(key))[0]
        out["obs_is_pad"][:] = (timesteps - history + 1)[:, None] + np.arange(history) < 0
        out["action_is_pad"][:] = timesteps[:, None] + np.arange(chunk) >= lengths[:, None]
        if future:
            out["future_is_pad"][:] = timesteps + future >= lengths
        out["task_index"][:] = [self._task_index[r.task] for r in records]
        out["episode_index"][:] = episodes
        out["timestep"][:] = timesteps
        return {**out, "instruction": [r.instruction for r in records]}

    def episode_arrays(self, episode: int, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """A whole episode: "obs/<key>" (T, *shape) for the chosen features, "action", "reward", "success"."""
        handle = self._handle(episode)
        length = self._record(episode).length
        names = [obs_path(k) for k in self.observation_keys(keys)] + [ACTION, REWARD, SUCCESS]
        return {name: np.array(handle.rows(name, 0, length)) for name in names}

    def load_episode(self, episode: int) -> Episode:
        """A whole episode as the collector handed it to the writer (for replay and conversion)."""
        record = self._record(episode)
        arrays = self.episode_arrays(episode)
        return Episode(
            task=record.task,
            instruction=record.instruction,
            seed=record.seed,
            success=record.success,
            observations={k: arrays[obs_path(k)] for k in self._manifest.features},
            actions=arrays[ACTION],
            rewards=arrays[REWARD],
            successes=arrays[SUCCESS],
            extra=dict(record.extra),
        )

    def verify(self) -> list[str]:
        """Check every episode file and every chunk of it; returns the problems found (empty if none).

        Also checks that the manifest's statistics are the merge of the episodes' own.
        """
        problems: list[str] = []
        merged: dict = {}
        for record in self._manifest.episodes:
            path = self.path / record.file
            try:
                with open_episode_file(path) as f:
                    check_episode_file(f, path, record.length, self._manifest.features, self._manifest.action)
                    names = [*map(obs_path, self._manifest.features), ACTION, REWARD, SUCCESS, STATS]
                    names += [offsets_path(n) for n in names if CODEC_ATTR in f[n].attrs]
                    for name in names:
                        _read_all_chunks(f[name], path, name)
                    attrs = (str(f.attrs["task"]), str(f.attrs["instruction"]), int(f.attrs["seed"]))
                    if attrs != (record.task, record.instruction, record.seed):
                        problems.append(
                            f"episode {record.index} ({path}): task/instruction/seed {attrs} differ "
                            f"from the manifest's {(record.task, record.instruction, record.seed)}"
                        )
                    merge_into(merged, stats_from_dict(json.loads(f[STATS][()].tobytes())))
            except (OSError, KeyError, ValueError) as e:
                problems.append(f"episode {record.index}: cannot read {path}: {e}")
            except DatasetError as e:
                problems.append(f"episode {record.index}: {e}")
        if not problems:
            for key, stats in self._manifest.stats.items():
                if key not in merged or merged[key].count != stats.count:
                    problems.append(f"statistics of {key!r} in the manifest do not match the episode files")
        return problems

    def close(self) -> None:
        self._handles.close()

    def __enter__(self) -> EpisodeDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- files -----------------------------------------------------------------------------------
    def _record(self, episode: int) -> EpisodeRecord:
        episodes = self._manifest.episodes
        if not 0 <= episode < len(episodes):
            raise IndexError(f"episode {episode} is not in {self.path}, which has {len(episodes)} episodes")
        return episodes[episode]

    def _handle(self, episode: int) -> EpisodeHandle:
        return self._handles.get(episode, lambda: self._open(episode))

    def _open(self, episode: int) -> EpisodeHandle:
        record = self._record(episode)
        path = self.path / record.file
        try:
            f = open_episode_file(path, CHUNK_CACHE_BYTES)
        except OSError as e:
            raise DatasetError(f"cannot open episode file {path} (episode {episode}): {e}") from e
        try:
            if episode not in self._validated:
                check_episode_file(f, path, record.length, self._manifest.features, self._manifest.action)
                self._validated.add(episode)
            return EpisodeHandle.of(path, f, [*map(obs_path, self._manifest.features), ACTION, REWARD, SUCCESS])
        except BaseException:
            f.close()
            raise


class _Statistics(dict):
    """A dict whose missing keys fail with the keys it does have: a normaliser must never skip one."""

    def __missing__(self, key: str) -> dict[str, Any]:
        have = f"it has {sorted(self)}" if self else "it has no episodes yet"
        raise KeyError(f"the dataset has no statistics for {key!r}; {have}")


def open_dataset(
    path: str | os.PathLike, *, max_open_files: int = 512, memory_budget: int = DEFAULT_MEMORY_BUDGET
) -> EpisodeDataset:
    """Open a dataset for reading (same as `EpisodeDataset(path)`)."""
    return EpisodeDataset(path, max_open_files=max_open_files, memory_budget=memory_budget)


def _read_all_chunks(ds: h5py.Dataset, path: Path, name: str) -> None:
    try:
        for chunk in ds.iter_chunks():
            ds[chunk]
    except OSError as e:
        raise DatasetError(f"episode file {path}: cannot read {name!r}, a chunk is corrupt: {e}") from e

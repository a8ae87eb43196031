"""A per-process LRU cache of open, read-only episode files.

Opening an episode file, checking it and reading its small arrays costs milliseconds, far more than
reading a window, so readers keep recently used files open. h5py handles must not cross a fork
(DataLoader workers would share file offsets and HDF5 state with the parent), so the cache forgets
everything when the pid changes and is never pickled: each worker opens its own files lazily.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from polyact.data.codecs import CODEC_ATTR, SHAPE_ATTR, EncodedFrames, offsets_path, stored_header
from polyact.data.format import DEPTH_SCALE_ATTR, decode_scaled, is_image
from polyact.errors import DatasetError

# HDF5's chunk cache per dataset: a few image frames, which consecutive windows share; small enough
# that many open files stay cheap.
CHUNK_CACHE_BYTES = 256 * 1024
# Features whose whole episode is at most this big (state, action, camera matrices: kilobytes) are
# read once per open file and sliced in memory: an h5py call costs ~10 us, as much as the rest of a
# window. Bigger arrays (images) are read from the file frame by frame unless the reader decides that
# the feature fits in its memory budget (EpisodeDataset's `memory_budget`).
SMALL_FEATURE_BYTES = 1 << 20


@dataclass
class EpisodeHandle:
    path: Path
    file: h5py.File
    arrays: dict[str, h5py.Dataset]  # by path in the file: "obs/rgb/corner", "action", ...
    streamed: set[str]  # arrays read frame by frame unless a caller asks to hold them (images, big ones)
    scales: dict[str, float]  # arrays stored as scaled integers (depth in millimetres): units per value
    encoded: dict[str, EncodedFrames]  # frames stored with a lossy codec, one by one (polyact.data.codecs)
    held: dict[str, np.ndarray] = field(default_factory=dict)  # whole arrays, read on first use
    damaged: set[str] = field(default_factory=set)  # a chunk failed: read frame by frame, so the rest stays readable

    @classmethod
    def of(cls, path: Path, file: h5py.File, names: list[str]) -> EpisodeHandle:
        arrays = {name: file[name] for name in names}
        streamed = {
            name
            for name, ds in arrays.items()
            if is_image(name.removeprefix("obs/")) or ds.nbytes > SMALL_FEATURE_BYTES
        }
        scales = {
            name: float(ds.attrs[DEPTH_SCALE_ATTR]) for name, ds in arrays.items() if DEPTH_SCALE_ATTR in ds.attrs
        }
        try:
            encoded = {
                name: EncodedFrames(
                    ds,
                    file[offsets_path(name)][()],
                    tuple(ds.attrs[SHAPE_ATTR]),
                    str(ds.attrs[CODEC_ATTR]),
                    stored_header(ds),
                )
                for name, ds in arrays.items()
                if CODEC_ATTR in ds.attrs
            }
        except OSError as e:
            raise DatasetError(f"episode file {path}: cannot read the frame offsets, a chunk is corrupt: {e}") from e
        return cls(path, file, arrays, streamed, scales, encoded)

    def _stored(self, name: str, lo: int | None = None, hi: int | None = None) -> np.ndarray:
        """Steps lo..hi-1 (all by default) of array `name` as stored: encoded frames decoded, scale not applied."""
        frames = self.encoded.get(name)
        if frames is not None:
            return frames.rows(lo or 0, frames.length if hi is None else hi)
        return self.arrays[name][()] if lo is None and hi is None else self.arrays[name][lo:hi]

    def rows(self, name: str, lo: int, hi: int, hold: bool = False) -> np.ndarray:
        """Steps lo..hi-1 of array `name`; with `hold`, the whole array is read once and kept in memory
        (as small arrays always are). DatasetError naming the file if a chunk fails its checksum."""
        whole = self.held.get(name)
        scale = self.scales.get(name)
        if whole is None and (hold or name not in self.streamed) and name not in self.damaged:
            try:
                whole = self.held[name] = decode_scaled(self._stored(name), scale)
            except OSError:  # h5py's report of a fletcher32 mismatch or an undecodable chunk
                self.damaged.add(name)
        try:
            return decode_scaled(self._stored(name, lo, hi), scale) if whole is None else whole[lo:hi]
        except OSError as e:
            raise DatasetError(f"episode file {self.path}: cannot read {name!r}, a chunk is corrupt: {e}") from e


class HandleCache:
    """At most `capacity` open episode files of this process, least recently used closed first."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"the open-file cache needs a capacity of at least 1, got {capacity}")
        self.capacity = capacity
        self._pid = os.getpid()
        self._open: OrderedDict[int, EpisodeHandle] = OrderedDict()

    def get(self, index: int, opener: Callable[[], EpisodeHandle]) -> EpisodeHandle:
        if self._pid != os.getpid():  # a forked child: the parent's handles are not ours to use or close
            self._open = OrderedDict()
            self._pid = os.getpid()
        handle = self._open.get(index)
        if handle is not None:
            self._open.move_to_end(index)
            return handle
        handle = opener()
        self._open[index] = handle
        if len(self._open) > self.capacity:
            _, oldest = self._open.popitem(last=False)
            oldest.file.close()
        return handle

    def close(self) -> None:
        if self._pid == os.getpid():
            for handle in self._open.values():
                handle.file.close()
        self._open.clear()

    def __getstate__(self) -> dict[str, int]:
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["capacity"])

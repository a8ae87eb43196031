"""DatasetWriter: create a dataset, or open one to append, and commit one episode file at a time.

Commit protocol for episode N (docs/storage.md):
  1. check the episode against the features (polyact.data.validate); nothing touches the disk before
  2. build the episode's HDF5 file in memory (arrays, attributes, statistics)
  3. write it to episodes/.episode_N.h5.tmp, fsync, rename to episodes/episode_N.h5, fsync the directory
     <- the episode now exists
  4. rewrite meta.json atomically with the episode and merged statistics
A kill at any instant leaves a dataset that opens; polyact.data.recovery tidies what steps 3-4 left.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from polyact.atomic import fsync_dir, write_bytes_atomic
from polyact.contract import EnvSpec, FeatureSpec
from polyact.data.codecs import (
    BLOB_CHUNK_BYTES,
    CODEC_ATTR,
    DEFAULT_IMAGE_QUALITY,
    HEADER_ATTR,
    LOSSY_COMPRESSIONS,
    QUALITY_ATTR,
    SHAPE_ATTR,
    check_quality,
    encode_frames,
    offsets_path,
)
from polyact.data.episode import Episode
from polyact.data.format import (
    DEFAULT_DEPTH_STORAGE,
    DEFAULT_IMAGE_COMPRESSION,
    EPISODES_DIR,
    FORMAT_VERSION,
    LIBVER,
    LOSSY_FORMAT_VERSIONS,
    REWARD,
    STATS,
    SUCCESS,
    EpisodeRecord,
    encode_depth,
    episode_filename,
    episode_relpath,
    storage_options,
)
from polyact.data.lock import WriterLock
from polyact.data.manifest import Manifest
from polyact.data.recovery import reconcile
from polyact.data.stats import episode_stats, merge_into, stats_to_dict
from polyact.data.validate import check_episode, check_schema
from polyact.errors import DatasetError
from polyact.faults import fault_point

_IMAGE_NAMES = itertools.count()
_IMAGE_BLOCK = 1 << 20  # growth step of the in-memory file: small steps make building it quadratic
_OFFSETS_FILTERS = {"compression": "gzip", "compression_opts": 4, "shuffle": True}  # frame offsets: a few KiB
_ERRNO_WORDS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file size limit reached"}


class DatasetWriter:
    """The one process appending to a dataset (an exclusive lock enforces it); use `create` or `open`."""

    def __init__(self, root: Path, manifest: Manifest, lock: WriterLock, repairs: list[str]):
        self.path = root
        self.repairs = repairs  # what opening repaired after an earlier writer was killed, in words
        self._manifest = manifest
        self._lock: WriterLock | None = lock

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        features: dict[str, FeatureSpec],
        action: FeatureSpec,
        env_spec: EnvSpec | None,
        fps: float,
        tasks: dict[str, list[str]],
        metadata: dict[str, Any] | None = None,
        image_compression: str = DEFAULT_IMAGE_COMPRESSION,
        depth_storage: str = DEFAULT_DEPTH_STORAGE,
        image_quality: int = DEFAULT_IMAGE_QUALITY,
    ) -> DatasetWriter:
        """Start a new dataset in `path`, which must not exist or be an empty directory.

        `tasks` maps every task the dataset may hold to its known instructions (an empty list is fine:
        instructions are added as episodes arrive). `image_compression` (format.IMAGE_COMPRESSIONS) is how
        image frames are compressed, losslessly; `depth_storage` is "float32" (metres) or "uint16_mm"
        (millimetres, read back as float32 metres); `image_quality` (1-100) is that of the lossy codecs
        (codecs.LOSSY_COMPRESSIONS, RGB only). Sizes, errors, read costs and the defaults' reasons in
        docs/storage.md.
        """
        check_schema(features, action, env_spec, fps, tasks, metadata, image_compression, depth_storage)
        image_quality = check_quality(image_quality)
        root = Path(path)
        if root.is_dir() and any(root.iterdir()):
            hint = " (it is a dataset: DatasetWriter.open appends to it)" if (root / "meta.json").exists() else ""
            raise DatasetError(f"refusing to create a dataset in {root}: the directory is not empty{hint}")
        try:
            (root / EPISODES_DIR).mkdir(parents=True, exist_ok=True)
            lock = WriterLock(root)
        except OSError as e:
            raise DatasetError(
                f"cannot create a dataset at {root}: {e.strerror or e}; the path must be a writable directory"
            ) from e
        manifest = Manifest(
            features=dict(features),
            action=action,
            env_spec=env_spec,
            fps=float(fps),
            tasks={t: list(instructions) for t, instructions in tasks.items()},
            metadata=dict(metadata or {}),
            image_compression=image_compression,
            depth_storage=depth_storage,
            image_quality=image_quality,
            format_version=LOSSY_FORMAT_VERSIONS.get(image_compression, FORMAT_VERSION),
        )
        try:
            manifest.save(root)
            fsync_dir(root.parent)
        except OSError as e:
            lock.release()
            raise DatasetError(f"cannot write the manifest of a new dataset at {root}: {e}") from e
        return cls(root, manifest, lock, [])

    @classmethod
    def for_spec(
        cls,
        path: str | os.PathLike,
        spec: EnvSpec,
        tasks: dict[str, list[str]] | None = None,
        features: dict[str, FeatureSpec] | None = None,
        **options: Any,
    ) -> DatasetWriter:
        """`create` for a dataset of an environment: its features (unless given: a subset, or extra ones),
        action, spec and rate come from `spec`, its tasks from `spec.tasks` unless given; `options` are
        create's others (metadata, compression)."""
        return cls.create(
            path,
            features=spec.features() if features is None else features,
            action=spec.action_feature(),
            env_spec=spec,
            fps=spec.control_hz,
            tasks=tasks if tasks is not None else {t: [] for t in spec.tasks},
            **options,
        )

    @classmethod
    def open(cls, path: str | os.PathLike) -> DatasetWriter:
        """Open an existing dataset to append, first repairing what a killed writer left (see `repairs`)."""
        root = Path(path)
        if not (root / "meta.json").is_file():
            raise DatasetError(f"{root / 'meta.json'} is missing: {root} is not a polyact dataset")
        try:
            lock = WriterLock(root)
        except OSError as e:
            raise DatasetError(f"cannot open {root} for writing: {e.strerror or e}") from e
        try:
            manifest = Manifest.load(root)
            repairs = reconcile(root, manifest, writer=True)
        except BaseException:
            lock.release()
            raise
        return cls(root, manifest, lock, repairs)

    @property
    def num_episodes(self) -> int:
        return len(self._manifest.episodes)

    @property
    def episodes(self) -> list[EpisodeRecord]:
        """The committed episodes (a resuming collector reads each task's seeds from here)."""
        return list(self._manifest.episodes)

    @property
    def metadata(self) -> dict[str, Any]:
        """What the creator stored with the dataset, e.g. the collection settings."""
        return self._manifest.metadata

    @property
    def storage(self) -> dict[str, Any]:
        """How frames are stored, as `create` took it (an appended episode is stored the same way)."""
        return self._manifest.storage

    @property
    def env_spec(self) -> EnvSpec | None:
        """The contract the dataset records (None for a dataset made without one)."""
        return self._manifest.env_spec

    def add_episode(self, episode: Episode) -> int:
        """Check `episode`, commit it durably, and return its index; on any failure nothing is committed."""
        if self._lock is None:
            raise DatasetError(f"the writer of {self.path} is closed")
        arrays = check_episode(episode, self._manifest)
        index = len(self._manifest.episodes)
        stats = episode_stats({k.removeprefix("obs/"): v for k, v in arrays.items() if k not in (REWARD, SUCCESS)})
        final = self.path / EPISODES_DIR / episode_filename(index)
        try:
            image = _episode_file_image(episode, arrays, stats, self._manifest)
            write_bytes_atomic(final, image, tmp=final.with_name(f".{final.name}.tmp"))
        except OSError as e:
            raise self._failure(e, index) from e
        fault_point("data.episode_file_committed")

        record = EpisodeRecord(
            index=index,
            file=episode_relpath(index),
            task=episode.task,
            instruction=episode.instruction,
            length=episode.length,
            success=bool(episode.success),
            seed=int(episode.seed),
            extra=dict(episode.extra),
        )
        self._manifest.episodes.append(record)
        merge_into(self._manifest.stats, stats)
        if episode.instruction not in self._manifest.tasks[episode.task]:
            self._manifest.tasks[episode.task].append(episode.instruction)
        try:
            self._manifest.save(self.path)
        except OSError as e:
            # The old manifest is intact unless the rename went through; reload it to know which.
            self._manifest = Manifest.load(self.path)
            if len(self._manifest.episodes) <= index:
                with contextlib.suppress(OSError):
                    final.unlink()
                    fsync_dir(final.parent)
                raise self._failure(e, index) from e
        fault_point("data.episode_committed")
        return index

    def _failure(self, e: OSError, index: int) -> DatasetError:
        what = _ERRNO_WORDS.get(e.errno or 0, "error")
        return DatasetError(
            f"{what} ({e}) while writing episode {index} to {self.path}; nothing of episode {index} was committed, "
            f"the {index} earlier episodes are intact"
        )

    def close(self) -> None:
        """Release the writer lock; every committed episode is already durable."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _episode_file_image(episode: Episode, arrays: dict[str, np.ndarray], stats: dict, manifest: Manifest) -> bytes:
    """The bytes of the episode's HDF5 file, built in memory.

    HDF5 never touches the disk while writing: a full disk or an I/O error then surfaces as a plain
    OSError from Python's own write, never as an error inside the HDF5 library, which can leave
    its state broken (a write failure there has crashed the process in our tests).
    """
    stats_json = json.dumps(stats_to_dict(stats), allow_nan=False).encode()
    ident = f"polyact-episode-{os.getpid()}-{next(_IMAGE_NAMES)}"  # a name only: nothing is created on disk
    with h5py.File(ident, "w", driver="core", backing_store=False, block_size=_IMAGE_BLOCK, libver=LIBVER) as f:
        for name, values in arrays.items():
            key = name.removeprefix("obs/")
            if key.startswith("rgb/") and manifest.image_compression in LOSSY_COMPRESSIONS:
                _write_encoded(f, name, values, manifest.image_compression, manifest.image_quality)
                continue
            attrs: dict[str, float] = {}
            if key.startswith("depth/"):
                values, attrs = encode_depth(key, values, manifest.depth_storage)
            spec = FeatureSpec(str(values.dtype), values.shape[1:])
            options = storage_options(key, spec, len(values), manifest.image_compression)
            f.create_dataset(name, data=values, **options).attrs.update(attrs)
        f.create_dataset(
            STATS, data=np.frombuffer(stats_json, np.uint8), chunks=True, fletcher32=True, compression="gzip"
        )
        f.attrs.update(
            {
                "format_version": manifest.format_version,
                "task": episode.task,
                "instruction": episode.instruction,
                "seed": int(episode.seed),
                "success": bool(episode.success),
                "length": episode.length,
                "extra": json.dumps(episode.extra),
            }
        )
        f.flush()
        return f.id.get_file_image()


def _write_encoded(f: h5py.File, name: str, frames: np.ndarray, codec: str, quality: int) -> None:
    """RGB frames (T, H, W, 3) encoded one by one with a lossy codec, as polyact.data.codecs lays them out."""
    data, offsets, header = encode_frames(frames, codec, quality)
    blob = f.create_dataset(name, data=data, chunks=(min(len(data), BLOB_CHUNK_BYTES),), fletcher32=True)
    blob.attrs.update({CODEC_ATTR: codec, QUALITY_ATTR: quality, SHAPE_ATTR: frames.shape[1:]})
    if header:
        blob.attrs[HEADER_ATTR] = np.frombuffer(header, np.uint8)
    f.create_dataset(offsets_path(name), data=offsets, fletcher32=True, **_OFFSETS_FILTERS)

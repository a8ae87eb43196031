"""The on-disk layout of a polyact dataset: names, versions, HDF5 filters, and the check of one episode file.

    <dataset>/meta.json                      the manifest (polyact.data.manifest)
    <dataset>/episodes/episode_000000.h5     one immutable file per episode:
        obs/<feature key>   (T, *shape)      e.g. obs/rgb/corner (T, H, W, 3) uint8
        action              (T, A) float32
        reward              (T,) float32
        success             (T,) bool        the task's success test after each action
        stats               (n,) uint8       UTF-8 JSON of this episode's statistics accumulators
        attrs: format_version, task, instruction, seed, success, length, extra (JSON)

Every HDF5 dataset carries the fletcher32 checksum filter, so a corrupt chunk fails loudly on read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # registers the LZ4 and Zstandard HDF5 filters, for writing and for reading
import numpy as np

from polyact.contract import FeatureSpec
from polyact.data.codecs import CODEC_ATTR, LOSSY_COMPRESSIONS, check_encoded, offsets_path
from polyact.errors import DatasetError

FORMAT_NAME = "polyact-episodes"
FORMAT_VERSION = 1
# Datasets with lossy frames (polyact.data.codecs) are version 2 (WebP) or 3 (JPEG, added later), so that
# a polyact from before a codec says to upgrade instead of failing on its arrays; everything else stays 1.
LOSSY_FORMAT_VERSIONS = {"webp": 2, "jpeg": 3}
SUPPORTED_VERSIONS = (1, 2, 3)

MANIFEST_NAME = "meta.json"
EPISODES_DIR = "episodes"
_EPISODE_RE = re.compile(r"^episode_(\d{6,})\.h5$")
_FEATURE_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")

ACTION = "action"
REWARD = "reward"
SUCCESS = "success"
STATS = "stats"

# Filters measured in docs/storage.md and bench/README.md. LZ4 and Zstandard (hdf5plugin) decode a frame
# several times faster than gzip; readers that hold a feature in memory decode each frame once. Shuffle
# (bytes of each float together) helps depth. Small per-step features are always gzip-compressed:
# readers load them whole once per open file, so it costs nothing.
LOSSLESS_COMPRESSIONS = ("none", "gzip", "lz4", "zstd")
IMAGE_COMPRESSIONS = (*LOSSLESS_COMPRESSIONS, *LOSSY_COMPRESSIONS)  # lossy ones for RGB; depth then gets zstd
DEFAULT_IMAGE_COMPRESSION = "zstd"
_IMAGE_FILTERS: dict[str, dict[str, dict[str, Any]]] = {
    "none": {"uint8": {}, "float": {}},
    "gzip": {
        "uint8": {"compression": "gzip", "compression_opts": 1},
        "float": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    },
    "lz4": {"uint8": dict(hdf5plugin.LZ4()), "float": {**hdf5plugin.LZ4(), "shuffle": True}},
    "zstd": {"uint8": dict(hdf5plugin.Zstd(clevel=3)), "float": {**hdf5plugin.Zstd(clevel=3), "shuffle": True}},
}
# Compressed frames are chunked in runs of consecutive frames, which differ little: on rendered
# Meta-World frames, Zstandard over 4 frames takes 0.42x the bytes of one frame per chunk, while a
# random training window decodes at most 2 chunks. Raw frames stay one per chunk (no gain, and a window
# then reads exactly its frames).
COMPRESSED_FRAMES_PER_CHUNK = 4
# Depth maps as float32 metres, or as uint16 millimetres (half the bytes before compression, and
# smooth integers compress far better; 0.5 mm rounding, 65.535 m at most, and a depth map with a farther
# value is refused, never clipped): the array then carries DEPTH_SCALE_ATTR, the metres per stored unit,
# and readers hand out float32 metres either way. Meta-World's renders reach 83 m (the far plane), so
# the default stays float32.
DEPTH_STORAGES = ("float32", "uint16_mm")
DEFAULT_DEPTH_STORAGE = "float32"
DEPTH_SCALE_ATTR = "scale"
_MILLIMETRE = 0.001
_VECTOR_FILTERS: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_VECTOR_CHUNK_BYTES = 64 * 1024
# HDF5 1.10 file format: its chunk indexes make small episode files about half the size of the
# 1.8 format's B-trees. Every h5py >= 3.0 wheel reads it.
LIBVER = ("v110", "v110")


def episode_filename(index: int) -> str:
    return f"episode_{index:06d}.h5"


def episode_relpath(index: int) -> str:
    return f"{EPISODES_DIR}/{episode_filename(index)}"


def parse_episode_filename(name: str) -> int | None:
    """The index in `episode_000012.h5`, or None for any other name."""
    m = _EPISODE_RE.match(name)
    return int(m.group(1)) if m else None


def obs_path(key: str) -> str:
    return f"obs/{key}"


def check_feature_key(key: str) -> None:
    """Feature keys become HDF5 paths, so they must be plain slash-separated names."""
    if not _FEATURE_KEY_RE.match(key):
        raise DatasetError(
            f"feature key {key!r} is not valid: use letters, digits, '_' and '-' in '/'-separated parts, "
            "e.g. 'rgb/corner' or 'state'"
        )


def is_image(key: str) -> bool:
    return key.startswith(("rgb/", "depth/"))


def encode_depth(key: str, values: np.ndarray, depth_storage: str) -> tuple[np.ndarray, dict[str, float]]:
    """A depth feature's array as stored, and the attributes that say how to read it back.

    DatasetError when a value does not fit the storage (uint16 millimetres span 0 to 65.535 m)."""
    if depth_storage == "float32":
        return values, {}
    limit = np.iinfo(np.uint16).max * _MILLIMETRE
    nearest, farthest = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if farthest > limit + _MILLIMETRE / 2 or nearest < -_MILLIMETRE / 2:
        raise DatasetError(
            f"{key} spans {nearest:.3f} to {farthest:.3f} m, outside depth_storage=uint16_mm's 0 to {limit:.3f} m; "
            f"use depth_storage=float32 (choices: {', '.join(DEPTH_STORAGES)})"
        )
    millimetres = np.clip(np.rint(values / _MILLIMETRE), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    return millimetres, {DEPTH_SCALE_ATTR: _MILLIMETRE}


def decode_scaled(stored: np.ndarray, scale: float | None) -> np.ndarray:
    """Rows of a stored array as the feature's values: integer-coded depth back to float32 metres."""
    return stored if scale is None else stored.astype(np.float32) * np.float32(scale)


def storage_options(key: str, spec: FeatureSpec, length: int, image_compression: str) -> dict[str, Any]:
    """Chunking and filters for one feature of an episode of `length` steps.

    Images get one frame per chunk when raw, COMPRESSED_FRAMES_PER_CHUNK consecutive frames when
    compressed; small per-step features get chunks of about 64 KiB (usually the whole episode in one).
    Frames of a lossy codec are not stored through these (polyact.data.codecs); a dataset's other
    images (depth) then get the default lossless codec.
    """
    if is_image(key):
        lossless = image_compression if image_compression in _IMAGE_FILTERS else DEFAULT_IMAGE_COMPRESSION
        rows = 1 if lossless == "none" else min(length, COMPRESSED_FRAMES_PER_CHUNK)
        filters = _IMAGE_FILTERS[lossless]["uint8" if np.dtype(spec.dtype) == np.uint8 else "float"]
    else:
        row_bytes = max(1, np.dtype(spec.dtype).itemsize * math.prod(spec.shape))
        rows = max(1, min(length, _VECTOR_CHUNK_BYTES // row_bytes))
        filters = _VECTOR_FILTERS
    return {"chunks": (rows, *spec.shape), "fletcher32": True, **filters}


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode as the manifest lists it; `file` is relative to the dataset root."""

    index: int
    file: str
    task: str
    instruction: str
    length: int
    success: bool
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> EpisodeRecord:
        types = {
            "index": int,
            "file": str,
            "task": str,
            "instruction": str,
            "length": int,
            "success": bool,
            "seed": int,
            "extra": dict,
        }
        for name, typ in types.items():
            if name not in d:
                raise DatasetError(f"{where} lacks {name!r}; an episode entry has {sorted(types)}")
            if not isinstance(d[name], typ) or (typ is int and isinstance(d[name], bool)):
                raise DatasetError(f"{where}: {name!r} should be {typ.__name__}, got {d[name]!r:.80}")
        return cls(**{name: d[name] for name in types})


def open_episode_file(path: Path, chunk_cache_bytes: int = 0) -> h5py.File:
    """Open a committed episode file read-only.

    Without HDF5's own file locks: a committed file is never written again (the writer builds files in
    memory and renames them into place), and those locks fail on some network filesystems.
    """
    return h5py.File(path, "r", rdcc_nbytes=chunk_cache_bytes, locking=False)


def read_record(path: Path, index: int) -> tuple[EpisodeRecord, dict[str, Any]]:
    """An episode file's own record and its statistics accumulators, from its attributes alone.

    Used to add back an episode whose file was committed but whose manifest update was not.
    """
    try:
        with open_episode_file(path) as f:
            check_version(f.attrs.get("format_version"), str(path))
            a = f.attrs
            record = EpisodeRecord(
                index=index,
                file=f"{EPISODES_DIR}/{path.name}",
                task=str(a["task"]),
                instruction=str(a["instruction"]),
                length=int(a["length"]),
                success=bool(a["success"]),
                seed=int(a["seed"]),
                extra=json.loads(a["extra"]),
            )
            stats = json.loads(f[STATS][()].tobytes())
    except (OSError, KeyError, ValueError) as e:
        raise DatasetError(f"cannot read episode file {path}: {e}") from e
    return record, stats


def check_version(version: Any, where: str) -> None:
    if version is None:
        raise DatasetError(
            f"{where} has no format_version: not a polyact dataset; supported versions: {list(SUPPORTED_VERSIONS)}"
        )
    if isinstance(version, np.integer):
        version = int(version)
    if not isinstance(version, int) or version not in SUPPORTED_VERSIONS:
        raise DatasetError(
            f"{where} has format_version {version!r}; this polyact reads versions {list(SUPPORTED_VERSIONS)} "
            "(upgrade polyact, or convert the dataset with polyact.data.convert)"
        )


def check_episode_file(
    f: h5py.File, path: Path, length: int, features: dict[str, FeatureSpec], action: FeatureSpec
) -> None:
    """Raise DatasetError naming the file and the array if the file does not match the manifest."""
    check_version(f.attrs.get("format_version"), f"episode file {path}")
    stored = int(f.attrs.get("length", -1))
    if stored != length:
        raise DatasetError(f"episode file {path}: length attribute is {stored}, the manifest says {length}")
    expected = {obs_path(k): spec for k, spec in features.items()}
    expected[ACTION] = action
    expected[REWARD] = FeatureSpec("float32", ())
    expected[SUCCESS] = FeatureSpec("bool", ())
    for name, spec in expected.items():
        ds = f.get(name)
        if not isinstance(ds, h5py.Dataset):
            want = f"{spec.dtype}{[length, *spec.shape]}"
            raise DatasetError(f"episode file {path} has no array {name!r}; expected {want}")
        if CODEC_ATTR in ds.attrs:  # frames encoded one by one (polyact.data.codecs)
            check_encoded(ds, f.get(offsets_path(name)), length, spec.shape, f"episode file {path}: {name!r}")
            continue
        if DEPTH_SCALE_ATTR in ds.attrs and np.dtype(spec.dtype) == np.float32:  # depth stored as integers
            spec = FeatureSpec("uint16", spec.shape)
        if ds.dtype != np.dtype(spec.dtype) or ds.shape != (length, *spec.shape):
            raise DatasetError(
                f"episode file {path}: {name!r} is {ds.dtype}{list(ds.shape)}, "
                f"expected {spec.dtype}{[length, *spec.shape]}"
            )

"""`polyact data export-lerobot`: a polyact dataset written as a LeRobot v3 dataset (data/lerobot_layout.py).

    rgb/<camera>      -> observation.images.<camera>, video (AV1 by default, as LeRobot records), or with
                         cameras=image PNG bytes in the data files (LeRobot's use_videos=False): lossless
    state             -> observation.state, float32 with the spec's state names
    action            -> action, float32 with the spec's action names
    goal              -> observation.environment_state, float32 with the spec's goal names
    rewards, successes-> next.reward (float32), next.success (bool), per frame
    instruction       -> the episode's LeRobot task (tasks.parquet)
    task, seed, success -> polyact/task, polyact/seed, polyact/success columns of the episodes metadata
                         (LeRobot keeps such columns and ignores them; import-lerobot reads them back)

Depth and camera intrinsics and extrinsics have no LeRobot convention and are left out.
Statistics (meta/stats.json) are the dataset's own, in LeRobot's shapes (images per channel in [0, 1]).
info.json is written last: a dataset without it is an export that did not finish.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from polyact.data.lerobot_layout import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILE_MB,
    DATA_PATH,
    EPISODES_PATH,
    INFO_PATH,
    STATS_PATH,
    VIDEO_FILE_MB,
    VIDEO_PATH,
    chunk_file,
    write_parquet,
    write_tasks,
)
from polyact.data.lerobot_mapping import ACTION_KEY, CAMERA_DTYPES, CAMERA_PREFIX, GOAL_KEY, STATE_KEY
from polyact.data.lerobot_video import DEFAULT_CODEC, DEFAULT_CRF, DEFAULT_GOP, VideoWriter, video_info
from polyact.data.reader import EpisodeDataset
from polyact.errors import ConfigError, DatasetError, unknown_name

MB = 1 << 20
REWARD_KEY, SUCCESS_KEY = "next.reward", "next.success"


@dataclass
class LeRobotExportConfig:
    """`polyact data export-lerobot src=POLYACT_DIR out=NEW_DIR [cameras=video] [codec=libsvtav1] [crf=30]
    [gop=2]`: a polyact dataset -> a LeRobot v3 dataset. With cameras=video, cameras become videos encoded
    with `codec` at constant rate factor `crf` and a keyframe every `gop` frames (LeRobot's defaults; lower
    crf keeps more detail); with cameras=image, PNG frames in the data files: exact, and larger."""

    src: str = ""
    out: str = ""
    cameras: str = "video"
    codec: str = DEFAULT_CODEC
    crf: int = DEFAULT_CRF
    gop: int = DEFAULT_GOP

    def __post_init__(self) -> None:
        if self.gop < 1 or not 0 <= self.crf <= 63:
            raise ConfigError(f"gop must be >= 1 and crf in 0..63, got gop={self.gop} crf={self.crf}")
        if self.cameras not in CAMERA_DTYPES:
            raise unknown_name("camera storage", self.cameras, CAMERA_DTYPES)


class _RollingVideo:
    """One camera's video files: episodes appended to the current file, the next file past the size limit."""

    def __init__(self, root: Path, key: str, fps: float, shape: tuple[int, ...], cfg: LeRobotExportConfig):
        self.root, self.key, self.fps, self.shape, self.cfg = root, key, fps, shape, cfg
        self.number, self.writer = 0, self._open(0)
        self.first_file = self.writer.path

    def _open(self, number: int) -> VideoWriter:
        path = self.root / VIDEO_PATH.format(video_key=self.key, **chunk_file(number))
        height, width = self.shape[:2]
        return VideoWriter(path, self.fps, height, width, self.cfg.codec, self.cfg.crf, self.cfg.gop)

    def add(self, frames: np.ndarray) -> dict[str, Any]:
        """Append one episode's frames; its row of the episodes metadata for this camera."""
        if self.writer.bytes > VIDEO_FILE_MB * MB:
            self.writer.close()
            self.number += 1
            self.writer = self._open(self.number)
        start = self.writer.seconds
        self.writer.add(frames)
        prefix = f"videos/{self.key}/"
        where = chunk_file(self.number)
        return {
            prefix + "chunk_index": where["chunk_index"],
            prefix + "file_index": where["file_index"],
            prefix + "from_timestamp": start,
            prefix + "to_timestamp": self.writer.seconds,
        }


def _vectors(values: np.ndarray) -> pa.FixedSizeListArray:
    """(T, D) float32 as LeRobot stores a vector feature: a fixed-size list of D float32 per frame."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])


def _pngs(frames: np.ndarray) -> pa.StructArray:
    """(T, H, W, 3) uint8 frames as LeRobot's image feature stores them: PNG bytes (and no path) per frame."""
    encoded = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return pa.StructArray.from_arrays(
        [pa.array(encoded, pa.binary()), pa.nulls(len(encoded), pa.string())], names=["bytes", "path"]
    )


def _frame_table(episode: Any, index: int, first: int, task_index: int, fps: float, images: list[str]) -> pa.Table:
    """The data-file rows of one episode (LeRobot's frame columns, state, action, goal, reward, success, and
    the `images` cameras' PNG frames)."""
    length = episode.length
    columns = {
        **{CAMERA_PREFIX + cam: _pngs(episode.observations[f"rgb/{cam}"]) for cam in images},
        STATE_KEY: _vectors(episode.observations["state"]),
        ACTION_KEY: _vectors(episode.actions),
        **({GOAL_KEY: _vectors(episode.observations["goal"])} if "goal" in episode.observations else {}),
        REWARD_KEY: pa.array(episode.rewards, pa.float32()),
        SUCCESS_KEY: pa.array(episode.successes, pa.bool_()),
        "timestamp": pa.array(np.arange(length) / fps, pa.float32()),
        "frame_index": pa.array(np.arange(length), pa.int64()),
        "episode_index": pa.array(np.full(length, index), pa.int64()),
        "index": pa.array(np.arange(first, first + length), pa.int64()),
        "task_index": pa.array(np.full(length, task_index), pa.int64()),
    }
    return pa.table(columns)


def _features(ds: EpisodeDataset, cams: list[str], dtype: str) -> dict[str, dict[str, Any]]:
    """info.json's features: cameras as `dtype` (a video's `info` is added once its first file exists)."""
    spec = ds.env_spec
    state_dim, action_dim = ds.features["state"].shape[0], ds.action_feature.shape[0]
    state_names = list(spec.state_names) if spec else [f"state_{i}" for i in range(state_dim)]
    action_names = list(spec.action.names) if spec else [f"action_{i}" for i in range(action_dim)]
    features: dict[str, dict[str, Any]] = {
        CAMERA_PREFIX + cam: {
            "dtype": dtype,
            "shape": list(ds.features[f"rgb/{cam}"].shape),
            "names": ["height", "width", "channels"],
        }
        for cam in cams
    }
    features[STATE_KEY] = {"dtype": "float32", "shape": [state_dim], "names": state_names}
    features[ACTION_KEY] = {"dtype": "float32", "shape": [action_dim], "names": action_names}
    if "goal" in ds.features:
        goal_dim = ds.features["goal"].shape[0]
        goal_names = list(spec.goal_names) if spec else [f"goal_{i}" for i in range(goal_dim)]
        features[GOAL_KEY] = {"dtype": "float32", "shape": [goal_dim], "names": goal_names}
    features[REWARD_KEY] = {"dtype": "float32", "shape": [1], "names": None}
    features[SUCCESS_KEY] = {"dtype": "bool", "shape": [1], "names": None}
    for key, dtype in (("timestamp", "float32"), *((k, "int64") for k in ("frame_index", "episode_index", "index"))):
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    features["task_index"] = {"dtype": "int64", "shape": [1], "names": None}
    return features


def _stats(ds: EpisodeDataset, cams: list[str]) -> dict[str, dict[str, Any]]:
    """meta/stats.json from the dataset's statistics: images per channel as (3, 1, 1) in [0, 1]."""
    out = {}
    vectors = [("state", STATE_KEY), ("action", ACTION_KEY), *([("goal", GOAL_KEY)] if "goal" in ds.features else [])]
    for key, name in [*((f"rgb/{c}", CAMERA_PREFIX + c) for c in cams), *vectors]:
        stats = ds.stats[key]
        image = key.startswith("rgb/")
        out[name] = {
            stat: (np.asarray(stats[stat]).reshape(-1, 1, 1) / 255.0 if image else np.asarray(stats[stat])).tolist()
            for stat in ("mean", "std", "min", "max", "q01", "q99")
        }
        out[name]["count"] = [ds.num_steps]
    return out


class _RollingData:
    """The data files: episodes' frame rows appended to the current parquet file, the next past the size limit."""

    def __init__(self, root: Path):
        self.root, self.number, self.bytes = root, 0, 0
        self.writer: pq.ParquetWriter | None = None

    def add(self, table: pa.Table) -> dict[str, int]:
        """Append one episode's rows; where they went, as columns of the episodes metadata."""
        if self.writer is not None and self.bytes + table.nbytes > DATA_FILE_MB * MB:
            self.writer.close()
            self.writer, self.number, self.bytes = None, self.number + 1, 0
        if self.writer is None:
            path = self.root / DATA_PATH.format(**chunk_file(self.number))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(path, table.schema, compression="snappy")
        self.writer.write_table(table)
        self.bytes += table.nbytes
        where = chunk_file(self.number)
        return {"data/chunk_index": where["chunk_index"], "data/file_index": where["file_index"]}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _info(ds: EpisodeDataset, features: dict[str, Any], frames: int, tasks: int, videos: bool) -> dict[str, Any]:
    fps = ds.fps
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": ds.env_spec.suite if ds.env_spec else None,
        "total_episodes": len(ds),
        "total_frames": frames,
        "total_tasks": tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_MB,
        "video_files_size_in_mb": VIDEO_FILE_MB,
        "fps": int(fps) if float(fps).is_integer() else fps,
        "splits": {"train": f"0:{len(ds)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if videos else None,
        "features": features,
    }


def run(cfg: LeRobotExportConfig) -> Path:
    """Write every episode of `cfg.src` into the new LeRobot dataset `cfg.out`, info.json last."""
    missing = [k for k in ("src", "out") if not getattr(cfg, k)]
    if missing:  # checked here, not in the schema, whose empty defaults `--help` prints
        raise ConfigError(f"polyact data export-lerobot needs {', '.join(missing)} (see --help)")
    root = Path(cfg.out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DatasetError(f"refusing to export into {root}: it exists and is not an empty directory")
    with EpisodeDataset(cfg.src) as ds:
        if len(ds) == 0 or "state" not in ds.features:
            raise DatasetError(f"{cfg.src}: LeRobot export needs episodes with a state; it has {len(ds)} episodes")
        cams = [k.removeprefix("rgb/") for k in ds.features if k.startswith("rgb/")]
        as_video = cfg.cameras == "video"
        videos = {
            c: _RollingVideo(root, CAMERA_PREFIX + c, ds.fps, ds.features[f"rgb/{c}"].shape, cfg)
            for c in (cams if as_video else [])
        }
        images = [] if as_video else cams
        data = _RollingData(root)
        instructions = list(dict.fromkeys(record.instruction for record in ds.episodes))
        rows, first = [], 0
        for index in range(len(ds)):
            episode = ds.load_episode(index)
            task_index = instructions.index(episode.instruction)
            row = {"episode_index": index, "tasks": [episode.instruction], "length": episode.length}
            row.update(data.add(_frame_table(episode, index, first, task_index, ds.fps, images)))
            row.update(dataset_from_index=first, dataset_to_index=first + episode.length)
            for cam, video in videos.items():
                row.update(video.add(episode.observations[f"rgb/{cam}"]))
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            row.update(
                {"polyact/task": episode.task, "polyact/seed": episode.seed, "polyact/success": bool(episode.success)}
            )
            rows.append(row)
            first += episode.length
        data.close()
        for video in videos.values():
            video.writer.close()
        write_parquet(root / EPISODES_PATH.format(**chunk_file(0)), pa.Table.from_pylist(rows))
        write_tasks(root, instructions)
        (root / STATS_PATH).write_text(json.dumps(_stats(ds, cams), indent=2))
        features = _features(ds, cams, cfg.cameras)
        for cam, video in videos.items():
            features[CAMERA_PREFIX + cam]["info"] = video_info(video.first_file)
        info = _info(ds, features, first, len(instructions), as_video)
        (root / INFO_PATH).write_text(json.dumps(info, indent=4))
    print(f"{root}: {len(rows)} episodes, {first} frames, {len(instructions)} tasks, cameras {cams}")
    return root

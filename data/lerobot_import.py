"""`polyact data import-lerobot`: a LeRobot v3 dataset (parquet frames, mp4 videos) becomes a polyact dataset.

Frames are read with pyarrow and videos with PyAV (no `lerobot` package: it pins an older torch). Each
LeRobot episode becomes one polyact episode, written as soon as it is read (memory holds one episode):

    cameras       each mapped video feature -> rgb/<camera>: the frame shown at from_timestamp + timestamp
                  in the episode's video file, as PyAV decodes it to RGB; each mapped image feature (PNG
                  bytes in the data files, LeRobot's use_videos=False) -> rgb/<camera>, the PNG's pixels
    state         observation.state (or the mapped feature) -> state, float32, values unchanged
    action        action (or the mapped feature) -> action, float32, values unchanged
    goal          observation.environment_state (or the mapped feature), where there is one -> goal
    task          the LeRobot task of the episode's first frame -> the instruction; the polyact task is the
                  mapping's name for it, else the string itself
    success       a LeRobot episode is a demonstration: successful, unless a `next.success` feature says
                  otherwise at its last frame; rewards come from `next.reward` when there is one, else 0

The action bounds in the dataset's spec are the range of the recorded actions (LeRobot records none).
Episodes exported by polyact carry their task name, seed and outcome in `polyact/*` columns of the
episodes metadata, which are read back. docs/lerobot.md says what is and is not carried over.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from polyact.data.episode import Episode
from polyact.data.lerobot_layout import FRAME_COLUMNS, check_layout, load_info, read_episodes, read_tasks
from polyact.data.lerobot_mapping import FeatureMapping, load_mapping
from polyact.data.lerobot_video import VideoReader
from polyact.data.robot_episodes import RobotTopics, robot_episode, robot_spec
from polyact.data.writer import DatasetWriter
from polyact.errors import ConfigError, DatasetError

REWARD_KEY, SUCCESS_KEY = "next.reward", "next.success"


@dataclass
class LeRobotImportConfig:
    """`polyact data import-lerobot src=LEROBOT_DIR out=NEW_DIR [mapping=MAPPING.yaml]`: a LeRobot v3 dataset
    on disk (a downloaded Hub dataset's directory) -> a polyact dataset. `mapping` names the cameras, state,
    action and task names where the defaults do not fit (docs/lerobot.md)."""

    src: str = ""
    out: str = ""
    mapping: str = ""


class LeRobotSource:
    """One LeRobot v3 dataset opened for import: its metadata checked, its frame columns in memory (not
    its images, which are decoded episode by episode)."""

    def __init__(self, root: Path, mapping_file: str = ""):
        self.root = root
        self.info = load_info(root)
        self.fps = float(self.info["fps"])
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.mapping: FeatureMapping = load_mapping(mapping_file, self.features, str(root))
        self.tasks = read_tasks(root)
        self.episodes = read_episodes(root)
        self.video_keys = [k for k in self.mapping.cameras.values() if self.features[k]["dtype"] == "video"]
        check_layout(root, self.info, self.episodes, self.video_keys)
        optional = [k for k in (REWARD_KEY, SUCCESS_KEY) if k in self.features]
        vectors = [self.mapping.state, self.mapping.action, *([self.mapping.goal] if self.mapping.goal else [])]
        self.frames = self._read_frames([*FRAME_COLUMNS, *vectors, *optional])
        self._videos: dict[tuple[str, Path], VideoReader] = {}
        self._pictures: dict[str, ImageColumn] = {}  # per image camera: the data file read last

    def _read_frames(self, columns: list[str]) -> pa.Table:
        """The frame columns of every data file the episodes name, in `index` order."""
        files = sorted({(e["data/chunk_index"], e["data/file_index"]) for e in self.episodes})
        tables = []
        for chunk, file in files:
            path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
            try:
                tables.append(pq.read_table(path, columns=columns))
            except (pa.ArrowInvalid, KeyError) as e:
                raise DatasetError(f"{path}: cannot read columns {columns}: {e}") from e
        table = pa.concat_tables(tables)
        return table.take(pc.sort_indices(table, [("index", "ascending")]))

    def _vectors(self, rows: pa.Table, key: str) -> np.ndarray:
        """(T, D) float32 of a vector column (stored as fixed or variable size lists)."""
        values = pc.list_flatten(rows.column(key)).to_numpy(zero_copy_only=False)
        return values.astype(np.float32).reshape(len(rows), -1)

    def instruction(self, episode: int) -> str:
        """The LeRobot task of the episode's first frame."""
        row = self.episodes[episode]
        first = self.frames.slice(row["dataset_from_index"], 1).column("task_index")[0].as_py()
        if first not in self.tasks:
            raise DatasetError(
                f"{self.root}: episode {episode} uses task_index {first}, which meta/tasks.parquet lacks"
            )
        return self.tasks[first]

    def task(self, episode: int) -> str:
        """The polyact task name: polyact's own (an export's `polyact/task`), the mapping's, or the string."""
        row = self.episodes[episode]
        return str(row["polyact/task"]) if "polyact/task" in row else self.mapping.task_name(self.instruction(episode))

    def columns(self, episode: int) -> dict[str, Any]:
        """Episode `episode`'s state (T, S), action (T, A), timestamps (T,) s, rewards (T,) and successes (T,)
        (None where the dataset has no such feature) and outcome."""
        row = self.episodes[episode]
        rows = self.frames.slice(row["dataset_from_index"], row["length"])
        indices = rows.column("episode_index").to_numpy()
        if len(rows) != row["length"] or not (indices == episode).all():
            raise DatasetError(
                f"{self.root}: episode {episode}'s rows {row['dataset_from_index']}..{row['dataset_to_index']} "
                "of the data files are not all its own frames"
            )
        out = {
            "state": self._vectors(rows, self.mapping.state),
            "action": self._vectors(rows, self.mapping.action),
            "goal": self._vectors(rows, self.mapping.goal) if self.mapping.goal else None,
            "timestamps": rows.column("timestamp").to_numpy().astype(np.float64),
            "rewards": _scalars(rows, REWARD_KEY).astype(np.float32) if REWARD_KEY in rows.column_names else None,
            "successes": _scalars(rows, SUCCESS_KEY).astype(bool) if SUCCESS_KEY in rows.column_names else None,
        }
        ended = out["successes"] is not None and bool(out["successes"][-1])
        out["success"] = bool(row.get("polyact/success", ended if out["successes"] is not None else True))
        return out

    def images(self, episode: int, camera: str, timestamps: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 frames of `camera` at the episode's `timestamps`."""
        key = self.mapping.cameras[camera]
        row = self.episodes[episode]
        if key not in self.video_keys:
            return self._pngs(row, key, camera)
        where = {"chunk_index": row[f"videos/{key}/chunk_index"], "file_index": row[f"videos/{key}/file_index"]}
        path = self.root / self.info["video_path"].format(video_key=key, **where)
        if (key, path) not in self._videos:
            for old in [k for k in self._videos if k[0] == key]:  # this camera's earlier file is done
                self._videos.pop(old).close()
            self._videos[key, path] = VideoReader(path, self.fps)
        return self._videos[key, path].frames_at(row[f"videos/{key}/from_timestamp"] + timestamps)

    def _pngs(self, row: dict[str, Any], key: str, camera: str) -> np.ndarray:
        """An image feature's frames of the episode in `row`: decoded from its data file's PNG bytes."""
        path = self.root / self.info["data_path"].format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        if key not in self._pictures or self._pictures[key].path != path:
            self._pictures[key] = ImageColumn(path, key)
        shape = (*self.camera_shape(camera), 3)
        return self._pictures[key].frames(row["dataset_from_index"], row["dataset_to_index"], shape)

    def camera_shape(self, camera: str) -> tuple[int, int]:
        """(height, width) of a camera, from its feature's shape and axis names."""
        feature = self.features[self.mapping.cameras[camera]]
        names = feature.get("names") or ["height", "width", "channels"]
        shape = dict(zip(names, feature["shape"], strict=True))
        return int(shape["height"]), int(shape["width"])

    def close(self) -> None:
        for reader in self._videos.values():
            reader.close()


class ImageColumn:
    """One image feature of one data file: a struct of PNG `bytes` (and a `path`) per frame, as Hugging Face
    `datasets` stores an Image, decoded a frame range at a time."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key
        try:
            table = pq.read_table(path, columns=["index", key])
        except (pa.ArrowInvalid, KeyError) as e:
            raise DatasetError(f"{path}: cannot read the image column {key!r}: {e}") from e
        column = table.column(key)
        if not pa.types.is_struct(column.type) or column.type.get_field_index("bytes") < 0:
            raise DatasetError(f"{path}: image column {key!r} is {column.type}; LeRobot stores struct<bytes, path>")
        self.row_of = {int(i): r for r, i in enumerate(table.column("index").to_numpy())}  # frame index -> row
        self.pngs = pc.struct_field(column, "bytes")

    def frames(self, first: int, end: int, shape: tuple[int, ...]) -> np.ndarray:
        """(end - first, *shape) uint8: the frames of rows whose `index` is first .. end-1, in that order."""
        out = np.empty((end - first, *shape), np.uint8)
        for t in range(end - first):
            if first + t not in self.row_of:
                raise DatasetError(f"{self.path}: frame {first + t} has no row, so no {self.key!r} image")
            data = self.pngs[self.row_of[first + t]].as_py()
            if data is None:
                raise DatasetError(f"{self.path}: frame {first + t}'s {self.key!r} has no embedded image bytes")
            out[t] = _decode_image(data, shape, f"{self.path}: frame {first + t}'s {self.key!r}")
        return out


def _decode_image(data: bytes, shape: tuple[int, ...], where: str) -> np.ndarray:
    """An embedded image's RGB pixels, refused unless they are `shape` (H, W, 3)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"))
    except OSError as e:
        raise DatasetError(f"{where} is not a readable image: {e}") from e
    if pixels.shape != shape:
        raise DatasetError(f"{where} is {list(pixels.shape)}, info.json says {list(shape)}")
    return pixels


def _scalars(rows: pa.Table, key: str) -> np.ndarray:
    """(T,) of a per-frame scalar column, stored plain or as a one-element list per frame."""
    column = rows.column(key)
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        column = pc.list_flatten(column)
    return column.to_numpy(zero_copy_only=False).reshape(len(rows))


def _names(feature: dict[str, Any], dim: int) -> list[str]:
    """A vector feature's element names ({"motors": [...]} as older LeRobot writes them, too), or none."""
    names = feature.get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    return [str(n) for n in names] if isinstance(names, list) and len(names) == dim else []


def import_spec(source: LeRobotSource, columns: list[dict[str, Any]]) -> Any:
    """The EnvSpec of the imported episodes, by robot_spec (named cameras, recorded action range)."""
    mapping, first = source.mapping, columns[0]
    topics = RobotTopics(
        task=source.task(0),
        rate_hz=source.fps,
        cameras=[f"{name}:{key}" for name, key in mapping.cameras.items()],
        state_joints=_names(source.features[mapping.state], first["state"].shape[1]),
    )
    shapes = {f"rgb/{c}": np.zeros((1, *source.camera_shape(c), 3), np.uint8) for c in mapping.cameras}
    light = [{**shapes, "state": c["state"], "action": c["action"]} for c in columns]
    spec = robot_spec(topics, light, {"state": "", "action": "lerobot"}, f"LeRobot feature {mapping.action!r}")
    action_names = _names(source.features[mapping.action], first["action"].shape[1])
    goal_dim = 0 if first["goal"] is None else first["goal"].shape[1]
    goal_names = _names(source.features[mapping.goal], goal_dim) if goal_dim else []
    tasks = dict.fromkeys(source.task(e) for e in range(len(columns)))
    notes = {**spec.notes, "robot_type": str(source.info.get("robot_type"))}
    return dataclasses.replace(
        spec,
        suite="lerobot",
        tasks=tuple(tasks),
        goal_names=tuple(goal_names or (f"goal_{i}" for i in range(goal_dim))),
        action=dataclasses.replace(spec.action, names=tuple(action_names) or spec.action.names),
        notes=notes,
    )


def _episode(source: LeRobotSource, e: int, columns: dict[str, Any]) -> Episode:
    """Episode `e` with its frames decoded, from its `columns` (LeRobotSource.columns)."""
    episode = {f"rgb/{c}": source.images(e, c, columns["timestamps"]) for c in source.mapping.cameras}
    episode.update(state=columns["state"], action=columns["action"], success=columns["success"])
    seed = int(source.episodes[e].get("polyact/seed", e))
    converted = robot_episode(episode, seed, source.task(e), source.instruction(e))
    if columns["goal"] is not None:
        converted.observations["goal"] = columns["goal"]
    if columns["rewards"] is not None:
        converted.rewards = columns["rewards"]
    if columns["successes"] is not None:
        converted.successes = columns["successes"]
    return converted


def run(cfg: LeRobotImportConfig) -> Path:
    """Import every episode of `cfg.src` into the new dataset `cfg.out`, one episode in memory at a time;
    on any failure the new dataset is removed, so that the same command can run again."""
    missing = [k for k in ("src", "out") if not getattr(cfg, k)]
    if missing:  # checked here, not in the schema, whose empty defaults `--help` prints
        raise ConfigError(f"polyact data import-lerobot needs {', '.join(missing)} (see --help)")
    source = LeRobotSource(Path(cfg.src), cfg.mapping)
    try:
        columns = [source.columns(e) for e in range(len(source.episodes))]
        if not columns:
            raise DatasetError(f"{cfg.src} has no episodes")
        vectors = ("state", "action", "goal") if source.mapping.goal else ("state", "action")
        shapes = {(k, c[k].shape[1]) for c in columns for k in vectors}
        if len(shapes) != len(vectors):
            raise DatasetError(f"{cfg.src}: episodes differ in the size of a vector feature: {sorted(shapes)}")
        spec = import_spec(source, columns)
        instructions: dict[str, list[str]] = {t: [] for t in spec.tasks}
        for e in range(len(columns)):
            if source.instruction(e) not in instructions[source.task(e)]:
                instructions[source.task(e)].append(source.instruction(e))
        features = {k: v for k, v in spec.features().items() if k.startswith("rgb/") or k in ("state", "goal")}
        metadata = {
            "imported_from": str(Path(cfg.src).resolve()),
            "lerobot": {
                "codebase_version": source.info["codebase_version"],
                "mapping": dataclasses.asdict(source.mapping),
            },
        }
        writer = DatasetWriter.for_spec(cfg.out, spec, instructions, features, metadata=metadata)
        try:
            for e, col in enumerate(columns):
                writer.add_episode(_episode(source, e, col))
        except BaseException:  # an import does not resume: leave no partial dataset in the way of a rerun
            writer.close()
            shutil.rmtree(cfg.out)
            raise
        writer.close()
    finally:
        source.close()
    print(f"{cfg.out}: {len(columns)} episodes, {sum(len(c['action']) for c in columns)} steps at {source.fps:g} fps")
    return Path(cfg.out)

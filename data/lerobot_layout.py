"""The LeRobot v3 dataset layout, as LeRobot 0.4.4 writes and reads it (read from its own code, not copied):

    meta/info.json                                codebase_version "v3.0", fps, features, path templates,
                                                  totals, chunks_size and the file size limits
    meta/tasks.parquet                            one row per task: the task string (a pandas index
                                                  column) and its task_index
    meta/episodes/chunk-CCC/file-FFF.parquet      one row per episode: length, tasks, its data file and
                                                  row range (dataset_from_index, dataset_to_index) and,
                                                  per camera, its video file and time span in it
    meta/stats.json                               per feature: mean, std, min, max, quantiles, count
    data/chunk-CCC/file-FFF.parquet               one row per frame, many episodes per file
    videos/<camera key>/chunk-CCC/file-FFF.mp4    many episodes one after another per file

A frame's image is the one shown at `from_timestamp + timestamp` in its episode's video file. Files roll
over to the next index when they pass the size limits, chunks every `chunks_size` files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from polyact.errors import DatasetError

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
CHUNKS_SIZE = 1000  # files per chunk directory
DATA_FILE_MB = 100  # a data file rolls over past this many MB
VIDEO_FILE_MB = 200  # a video file rolls over past this many MB
INFO_KEYS = ("codebase_version", "fps", "features", "total_episodes", "total_frames", "data_path")
FRAME_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")  # every data file has them
_PANDAS_INDEX = "__index_level_0__"  # the column pandas stores an unnamed index in


def load_info(root: Path) -> dict[str, Any]:
    """meta/info.json of a v3 dataset, refused with the reason when it is missing, malformed or another version."""
    path = root / INFO_PATH
    if not path.is_file():
        raise DatasetError(f"{path} is missing: {root} is not a LeRobot v3 dataset")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path} is not readable JSON: {e}") from e
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise DatasetError(f"{path} lacks {missing}: a LeRobot v3 info.json has {list(INFO_KEYS)}")
    version = str(info["codebase_version"])
    if version.split(".")[0] != CODEBASE_VERSION.split(".")[0]:
        raise DatasetError(
            f"{path}: codebase_version {version!r} is not supported; this reads LeRobot {CODEBASE_VERSION} "
            "datasets (convert older ones with LeRobot's convert_dataset_v21_to_v30)"
        )
    return info


def chunk_file(number: int) -> dict[str, int]:
    """The chunk and file index of the `number`-th file of a kind (files roll over, chunks every CHUNKS_SIZE)."""
    return {"chunk_index": number // CHUNKS_SIZE, "file_index": number % CHUNKS_SIZE}


def read_tasks(root: Path) -> dict[int, str]:
    """task_index -> task string, from meta/tasks.parquet (the string is the pandas index LeRobot writes)."""
    path = root / TASKS_PATH
    if not path.is_file():
        raise DatasetError(f"{path} is missing: a LeRobot v3 dataset lists its tasks there")
    table = pq.read_table(path)
    names = table.column_names
    column = "task" if "task" in names else next((n for n in names if n != "task_index"), None)
    if column is None or "task_index" not in names:
        raise DatasetError(f"{path} has columns {names}; expected task_index and the task strings")
    indices, strings = table.column("task_index").to_pylist(), table.column(column).to_pylist()
    return dict(zip((int(i) for i in indices), (str(s) for s in strings), strict=True))


def write_tasks(root: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet with `tasks[i]` as task i, shaped as pandas writes LeRobot's DataFrame (the task
    strings are its index), so that LeRobot's `pd.read_parquet` gets the index it looks tasks up by."""
    pandas_meta = {
        "index_columns": [_PANDAS_INDEX],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64"},
            {"name": None, "field_name": _PANDAS_INDEX, "pandas_type": "unicode", "numpy_type": "object"},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    schema = pa.schema(
        [("task_index", pa.int64()), (_PANDAS_INDEX, pa.string())], metadata={"pandas": json.dumps(pandas_meta)}
    )
    table = pa.table({"task_index": list(range(len(tasks))), _PANDAS_INDEX: list(tasks)}, schema=schema)
    write_parquet(root / TASKS_PATH, table)


def read_episodes(root: Path) -> list[dict[str, Any]]:
    """The rows of meta/episodes/*/*.parquet in episode order, without the per-episode statistics."""
    paths = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not paths:
        raise DatasetError(f"{root / 'meta' / 'episodes'} holds no chunk-*/file-*.parquet: the episodes are not listed")
    rows = []
    for path in paths:
        table = pq.read_table(path)
        keep = [c for c in table.column_names if not c.startswith("stats/")]
        rows += table.select(keep).to_pylist()
    return sorted(rows, key=lambda row: row["episode_index"])


def write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


def check_layout(root: Path, info: dict[str, Any], episodes: list[dict[str, Any]], video_keys: list[str]) -> None:
    """What a LeRobot v3 reader relies on, refused with the first inconsistency: episodes numbered 0..N-1
    as info says, their frame ranges back to back and as long as the episodes, every data and video file
    they name present, and each video span as long as its episode at the dataset's rate."""
    numbers = [row["episode_index"] for row in episodes]
    if numbers != list(range(info["total_episodes"])):
        raise DatasetError(
            f"{root}: info.json says {info['total_episodes']} episodes, meta/episodes lists episodes "
            f"{numbers[:5]}{'...' if len(numbers) > 5 else ''}"
        )
    start = 0
    for row in episodes:
        episode = row["episode_index"]
        span = (row["dataset_from_index"], row["dataset_to_index"])
        if span != (start, start + row["length"]):
            raise DatasetError(
                f"{root}: episode {episode} covers frames {span}; after the episodes before it, frames "
                f"{(start, start + row['length'])} (its length is {row['length']})"
            )
        start = span[1]
        files = [
            root / info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
        ]
        for key in video_keys:
            where = {"chunk_index": row[f"videos/{key}/chunk_index"], "file_index": row[f"videos/{key}/file_index"]}
            files.append(root / info["video_path"].format(video_key=key, **where))
            seconds = row[f"videos/{key}/to_timestamp"] - row[f"videos/{key}/from_timestamp"]
            if abs(seconds * info["fps"] - row["length"]) > 0.5:
                raise DatasetError(
                    f"{root}: episode {episode}'s {key} video spans {seconds:.3f} s, {row['length']} frames at "
                    f"{info['fps']} fps take {row['length'] / info['fps']:.3f} s"
                )
        absent = [str(f.relative_to(root)) for f in files if not f.is_file()]
        if absent:
            raise DatasetError(f"{root}: episode {episode} names files that are missing: {absent}")
    if start != info["total_frames"]:
        raise DatasetError(f"{root}: info.json says {info['total_frames']} frames, the episodes hold {start}")

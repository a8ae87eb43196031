"""meta.json: the dataset's manifest, read with validation and written atomically.

The manifest is the single place that lists episodes; it is replaced as a whole (write, fsync, rename)
after each committed episode, so a reader always sees an old or a new version, never a torn one.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyact.atomic import write_json_atomic
from polyact.contract import EnvSpec, FeatureSpec
from polyact.data.codecs import DEFAULT_IMAGE_QUALITY, LOSSY_COMPRESSIONS
from polyact.data.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    EpisodeRecord,
    check_feature_key,
    check_version,
    episode_relpath,
)
from polyact.data.stats import FeatureStats, stats_from_dict, stats_to_dict
from polyact.errors import DatasetError


def _created_by() -> str:
    from polyact import __version__

    return f"polyact {__version__}"


@dataclass
class Manifest:
    features: dict[str, FeatureSpec]
    action: FeatureSpec
    env_spec: EnvSpec | None
    fps: float
    tasks: dict[str, list[str]]  # task -> the instructions its episodes were given
    episodes: list[EpisodeRecord] = field(default_factory=list)
    stats: dict[str, FeatureStats] = field(default_factory=dict)  # feature key or "action" -> merged accumulators
    metadata: dict[str, Any] = field(default_factory=dict)  # whatever the creator passed, e.g. collection settings
    image_compression: str = "none"  # how the writer stores rgb/depth frames (format.IMAGE_COMPRESSIONS)
    depth_storage: str = "float32"  # depth frames as float32 metres or uint16 millimetres (format.DEPTH_STORAGES)
    image_quality: int = DEFAULT_IMAGE_QUALITY  # of the lossy image codecs (polyact.data.codecs); unused otherwise
    created_by: str = field(default_factory=_created_by)
    created_at: str = field(default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    format_version: int = FORMAT_VERSION

    @property
    def storage(self) -> dict[str, Any]:
        """image_compression and depth_storage, and image_quality where the compression is lossy."""
        quality = {"image_quality": self.image_quality} if self.image_compression in LOSSY_COMPRESSIONS else {}
        return {"image_compression": self.image_compression, "depth_storage": self.depth_storage, **quality}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "fps": self.fps,
            "features": {k: spec.to_dict() for k, spec in self.features.items()},
            "action": self.action.to_dict(),
            "env_spec": self.env_spec.to_dict() if self.env_spec is not None else None,
            "tasks": self.tasks,
            "metadata": self.metadata,
            "storage": {
                "image_compression": self.image_compression,
                "depth_storage": self.depth_storage,
                "image_quality": self.image_quality,
            },
            "episodes": [e.to_dict() for e in self.episodes],
            "stats": stats_to_dict(self.stats),
        }

    def save(self, root: Path) -> None:
        write_json_atomic(root / MANIFEST_NAME, self.to_dict())

    @classmethod
    def load(cls, root: Path) -> Manifest:
        path = root / MANIFEST_NAME
        if not root.is_dir():
            raise DatasetError(f"dataset directory {root} does not exist (or is not a directory)")
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise DatasetError(
                f"{path} is missing: {root} is not a polyact dataset (or its creation was interrupted)"
            ) from None
        except OSError as e:
            raise DatasetError(f"cannot read {path}: {e}") from e
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path} is not valid JSON ({e}); the manifest is damaged") from e
        if not isinstance(d, dict):
            raise DatasetError(f"{path} should hold a JSON object, got {type(d).__name__}")
        check_version(d.get("format_version"), str(path))
        try:
            return cls._from_dict(d, path)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            raise DatasetError(f"{path} is not a valid manifest: {type(e).__name__}: {e}") from e

    @classmethod
    def _from_dict(cls, d: dict[str, Any], path: Path) -> Manifest:
        features = {str(k): FeatureSpec.from_dict(v) for k, v in d["features"].items()}
        for key in features:
            check_feature_key(key)
        episodes = [EpisodeRecord.from_dict(e, f"{path} episodes[{i}]") for i, e in enumerate(d["episodes"])]
        for position, record in enumerate(episodes):
            if record.index != position or record.file != episode_relpath(position):
                raise DatasetError(
                    f"{path} episodes[{position}] is episode {record.index} in {record.file!r}; "
                    f"expected episode {position} in {episode_relpath(position)!r}"
                )
        tasks = {str(t): [str(i) for i in instructions] for t, instructions in d["tasks"].items()}
        return cls(
            features=features,
            action=FeatureSpec.from_dict(d["action"]),
            env_spec=EnvSpec.from_dict(d["env_spec"]) if d.get("env_spec") is not None else None,
            fps=float(d["fps"]),
            tasks=tasks,
            episodes=episodes,
            stats=stats_from_dict(d["stats"]),
            metadata=dict(d.get("metadata") or {}),
            image_compression=str(d.get("storage", {}).get("image_compression", "none")),
            depth_storage=str(d.get("storage", {}).get("depth_storage", "float32")),
            image_quality=int(d.get("storage", {}).get("image_quality", DEFAULT_IMAGE_QUALITY)),
            created_by=str(d.get("created_by", "unknown")),
            created_at=str(d.get("created_at", "unknown")),
            format_version=int(d["format_version"]),
        )

"""`polyact data convert`: rewrite a dataset with other storage settings, episode by episode.

The copy is an ordinary dataset written through `DatasetWriter`, so it is crash-safe the same way: a
killed conversion leaves every copied episode readable, and the same command continues after the last
one. Every value is kept except what a setting rounds by design (depth in millimetres: 0.5 mm at most).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from polyact.data.codecs import DEFAULT_IMAGE_QUALITY
from polyact.data.episode import Episode
from polyact.data.format import (
    DEFAULT_DEPTH_STORAGE,
    DEFAULT_IMAGE_COMPRESSION,
    MANIFEST_NAME,
)
from polyact.data.reader import EpisodeDataset
from polyact.data.validate import check_storage
from polyact.data.writer import DatasetWriter
from polyact.errors import ConfigError, DatasetError


@dataclass
class ConvertConfig:
    """`polyact data convert src=DATASET out=NEW_DIR [image_compression=zstd] [depth_storage=float32]
    [image_quality=75]`.

    image_compression: none | gzip | lz4 | zstd (lossless) | webp | jpeg (lossy, RGB only, at image_quality
    1-100); depth_storage: float32 | uint16_mm. The defaults are those of new datasets; sizes, errors and
    read speeds of each: docs/storage.md.
    """

    src: str = ""
    out: str = ""
    image_compression: str = DEFAULT_IMAGE_COMPRESSION
    depth_storage: str = DEFAULT_DEPTH_STORAGE
    image_quality: int = DEFAULT_IMAGE_QUALITY

    def __post_init__(self) -> None:
        if not self.src or not self.out:
            raise ConfigError("polyact data convert needs src=DATASET and out=NEW_DIRECTORY")
        if Path(self.src).resolve() == Path(self.out).resolve():
            raise ConfigError(f"out must be a new directory, not the source {self.src}")
        self.storage()

    def storage(self) -> dict[str, Any]:
        """The settings as DatasetWriter.create takes them; quality only where a lossy codec uses it."""
        return check_storage(self.image_compression, self.depth_storage, self.image_quality)


def convert(cfg: ConvertConfig) -> Path:
    """Copy every episode of `cfg.src` not yet in `cfg.out` into it, with `cfg`'s storage settings."""
    source = EpisodeDataset(cfg.src)
    storage = cfg.storage()
    provenance = {"source": str(Path(cfg.src).resolve()), "format": "polyact", "storage": storage}

    def create(out: Path) -> DatasetWriter:
        return DatasetWriter.create(
            out,
            features=source.features,
            action=source.action_feature,
            env_spec=source.env_spec,
            fps=source.fps,
            tasks=source.tasks,
            metadata={**source.metadata, "converted_from": provenance},
            **storage,
        )

    return rewrite_episodes(source, Path(cfg.out), "converted_from", provenance, create, lambda e: e, "conversion")


def rewrite_episodes(
    source: EpisodeDataset,
    out: Path,
    provenance_key: str,
    provenance: dict[str, Any],
    create: Callable[[Path], DatasetWriter],
    transform: Callable[[Episode], Episode],
    what: str,
) -> Path:
    """Write `transform(episode)` of every episode of `source` not yet in `out`, resumably.

    `out` is a new dataset made by `create` (whose metadata must hold `provenance` under `provenance_key`)
    or what a stopped run of the same rewrite left there: the same provenance and, so far, the same
    episodes (task and seed) in the same order; anything else is refused."""
    if (out / MANIFEST_NAME).exists():
        writer = DatasetWriter.open(out)
        _check_resumable(writer, source, provenance_key, provenance, what)
    else:
        writer = create(out)
    with writer:
        done = writer.num_episodes
        for index in tqdm(range(done, len(source)), desc=what, unit="ep", initial=done, total=len(source)):
            writer.add_episode(transform(source.load_episode(index)))
    return out


def _check_resumable(
    writer: DatasetWriter, source: EpisodeDataset, provenance_key: str, provenance: dict[str, Any], what: str
) -> None:
    """The existing output must be this rewrite of this source, stopped part way."""
    made_from = writer.metadata.get(provenance_key)
    copied = writer.episodes
    same_episodes = len(copied) <= len(source) and all(
        (c.task, c.seed) == (s.task, s.seed) for c, s in zip(copied, source.episodes[: len(copied)], strict=True)
    )
    if made_from != provenance or not same_episodes:
        writer.close()
        settings = ", ".join(f"{k}={v}" for k, v in provenance.items() if k != "source")
        raise DatasetError(
            f"{writer.path} already holds a dataset that is not an interrupted {what} of {source.path} with these "
            f"settings ({settings}; it says {provenance_key}={made_from}); choose another out"
        )


def run(cfg: ConvertConfig) -> Path:
    """`polyact data convert`: convert, then print both sizes."""
    out = convert(cfg)
    before, after = episode_bytes(Path(cfg.src)), episode_bytes(out)
    frames = max(1, EpisodeDataset(out).num_steps)
    print(
        f"{out}: {after / 2**20:.1f} MiB ({after / frames / 1024:.2f} KiB a step), "
        f"from {before / 2**20:.1f} MiB ({before / frames / 1024:.2f} KiB a step): "
        f"{before / max(after, 1):.1f}x smaller"
    )
    return out


def episode_bytes(root: Path) -> int:
    """Bytes of a dataset's episode files (what the storage settings change)."""
    return sum(p.stat().st_size for p in (root / "episodes").glob("*.h5"))

"""Bring a manifest in line with the episode files on disk after a writer was killed.

The commit protocol (docs/storage.md) leaves only two kinds of debris, whatever the instant of the kill:
  - `*.tmp` files: torn writes, never part of the dataset. A writer deletes them; a reader ignores them.
  - a complete episode file the manifest does not list (killed between its rename and the manifest
    update). Its own attributes and statistics describe it fully, so it is added back: a writer
    rewrites the manifest, a reader includes it in memory.
While a live writer holds the lock, both are its work in progress, not debris, and a reader says nothing.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from polyact.atomic import fsync_dir
from polyact.data.format import EPISODES_DIR, MANIFEST_NAME, episode_filename, parse_episode_filename, read_record
from polyact.data.lock import writer_active
from polyact.data.manifest import Manifest
from polyact.data.stats import merge_into, stats_from_dict
from polyact.errors import DatasetError


def reconcile(root: Path, manifest: Manifest, *, writer: bool) -> list[str]:
    """Repair `manifest` (in memory, and on disk if `writer`) from the files under `root`.

    Returns the repairs in words (also issued as warnings); raises DatasetError for damage that
    cannot be repaired safely: a listed episode whose file is gone, or a gap in the episode numbers.
    """
    episodes_dir = root / EPISODES_DIR
    try:
        names = os.listdir(episodes_dir)
    except OSError as e:
        raise DatasetError(f"cannot list the episode files of {root}: {e}") from e
    quiet = not writer and writer_active(root)
    repairs: list[str] = []

    torn = [episodes_dir / n for n in sorted(names) if n.endswith(".tmp")]
    if (root / (MANIFEST_NAME + ".tmp")).exists():
        torn.append(root / (MANIFEST_NAME + ".tmp"))
    if torn and writer:
        for path in torn:
            path.unlink()
        fsync_dir(episodes_dir)
        fsync_dir(root)
        repairs.append(f"removed {len(torn)} torn write(s) left by a killed writer: {_names(torn)}")
    elif torn and not quiet:
        repairs.append(
            f"ignored {len(torn)} torn write(s) left by a killed writer (the next writer removes them): {_names(torn)}"
        )

    on_disk = {i for i in map(parse_episode_filename, names) if i is not None}
    missing = [r.file for r in manifest.episodes if r.index not in on_disk]
    if missing:
        raise DatasetError(
            f"{len(missing)} episode file(s) listed in {root / MANIFEST_NAME} are missing: "
            f"{', '.join(str(root / m) for m in missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    added = sorted(i for i in on_disk if i >= len(manifest.episodes))
    for index in added:
        if index != len(manifest.episodes):
            raise DatasetError(
                f"{root}: episode file {episode_filename(index)} is not listed in the manifest and episode "
                f"{len(manifest.episodes)} has no file; episode numbers must run 0..N-1 without gaps"
            )
        record, stats = read_record(episodes_dir / episode_filename(index), index)
        if record.task not in manifest.tasks:
            raise DatasetError(
                f"{root / record.file} is not listed in the manifest and its task {record.task!r} is not one of "
                f"the dataset's tasks {sorted(manifest.tasks)}"
            )
        manifest.episodes.append(record)
        merge_into(manifest.stats, stats_from_dict(stats))
        if record.instruction not in manifest.tasks[record.task]:
            manifest.tasks[record.task].append(record.instruction)
        if not quiet:
            repairs.append(
                f"added back episode {index} ({record.file}): its file was committed but the manifest "
                "update was not (the writer was killed in between)"
            )
    if writer and added:
        manifest.save(root)
    for repair in repairs:
        warnings.warn(f"polyact dataset {root}: {repair}", stacklevel=3)
    return repairs


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths[:5]) + (" ..." if len(paths) > 5 else "")

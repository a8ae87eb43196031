"""What `polyact data info` and `polyact data verify` print: a dataset summary and an integrity check."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from polyact.data.reader import EpisodeDataset
from polyact.errors import DatasetError


def format_info(path: str | os.PathLike) -> str:
    """A human-readable summary of the dataset at `path` (opening it repairs nothing on disk)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the repairs are part of the summary below
        ds = EpisodeDataset(path)
    lines = [
        f"dataset      {ds.path.resolve()}",
        f"format       version {ds.format_version} (created by {ds.created_by})",
        f"episodes     {len(ds)} ({ds.num_steps} steps) at {ds.fps:g} fps",
        f"size         {_human_size(_disk_usage(ds.path))} on disk"
        + (f", {_human_size(_disk_usage(ds.path) // ds.num_steps)} a step" if ds.num_steps else ""),
        f"storage      image frames {ds.storage['image_compression']}"
        + (f" at quality {ds.storage['image_quality']}" if "image_quality" in ds.storage else "")
        + f", depth {ds.storage['depth_storage']}",
        "",
        "tasks" + " " * 29 + "episodes  successes  length mean   min   max",
    ]
    for task in sorted(ds.tasks):
        lengths = [e.length for e in ds.episodes if e.task == task]
        successes = sum(e.success for e in ds.episodes if e.task == task)
        if lengths:
            shown = f"{np.mean(lengths):11.1f} {min(lengths):5d} {max(lengths):5d}"
        else:
            shown = f"{'-':>11} {'-':>5} {'-':>5}"
        lines.append(f"  {task:32s} {len(lengths):8d} {successes:10d}  {shown}")
    lines += ["", "features"]
    for key, spec in [*ds.features.items(), ("action", ds.action_feature)]:
        lines.append(f"  {key:32s} {spec.dtype:8s} {tuple(spec.shape)}")
    lines += ["", "statistics (per dimension)"]
    for key in ["action"] + (["state"] if "state" in ds.features else []):
        if key not in ds.stats:
            lines.append(f"  {key}: none yet (no episodes)")
            continue
        for name in ("mean", "std", "min", "max", "q01", "q99"):
            values = np.array2string(
                np.atleast_1d(ds.stats[key][name]),
                precision=3,
                max_line_width=10_000,
                threshold=12,
                suppress_small=True,
            )
            lines.append(f"  {key + ' ' + name:16s} {values}")
    lines += ["", "repairs on open: none" if not ds.repairs else "repairs on open:"]
    lines += [f"  - {r}" for r in ds.repairs]
    ds.close()
    return "\n".join(lines)


def verify_dataset(path: str | os.PathLike) -> list[str]:
    """Every problem with the dataset at `path`, reading every chunk of every file; empty if it is sound.

    Repairs that opening needed (torn writes, an episode added back) are warnings, not problems.
    """
    try:
        ds = EpisodeDataset(path)
    except DatasetError as e:
        return [str(e)]
    with ds:
        return ds.verify()


def _disk_usage(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def _human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    units = ("KiB", "MiB", "GiB", "TiB")
    power = min(len(units), int(np.log2(n) // 10))
    return f"{n / 1024**power:.1f} {units[power - 1]}"

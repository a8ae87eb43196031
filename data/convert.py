"""Convert between polyact datasets and directories of per-episode .npz files (the naive format).

One .npz per episode, episodes in file-name order:
    <feature key>   (T, *shape)     observation arrays named by contract key: "rgb/corner", "state", ...
    action          (T, A) float32
    task            str (0-d)       instruction  str (0-d)
    seed            int (0-d)       success      bool (0-d)
    reward          (T,) float32    optional; zeros when absent
    step_success    (T,) bool       optional; when absent, False except the last step, which is `success`
    extra           str (0-d)       optional JSON of the episode's extra metadata
What the converter had to fill in is recorded in the dataset's metadata["converted_from"].
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from polyact.contract import EnvSpec, FeatureSpec
from polyact.data.episode import Episode
from polyact.data.reader import EpisodeDataset
from polyact.data.writer import DatasetWriter
from polyact.errors import DatasetError

_SCALARS = ("task", "instruction", "seed", "success", "extra")
_PER_STEP = ("action", "reward", "step_success")


def convert_npz(
    src_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    fps: float,
    env_spec: EnvSpec | None = None,
    metadata: dict[str, Any] | None = None,
) -> int:
    """Write the .npz episodes of `src_dir` as a new polyact dataset at `out_path`; returns the episode count.

    Features are every per-step array of the first file other than action/reward/step_success.
    """
    files = sorted(Path(src_dir).glob("*.npz"))
    if not files:
        raise DatasetError(f"no .npz files in {src_dir}")
    tasks: dict[str, list[str]] = {}
    filled: set[str] = set()  # optional arrays some file lacks; recorded so nobody mistakes them for data
    for path in files:
        with np.load(path, allow_pickle=False) as z:
            _require(z, path, ("task", "instruction", "seed", "success", "action"))
            instructions = tasks.setdefault(str(z["task"]), [])
            if str(z["instruction"]) not in instructions:
                instructions.append(str(z["instruction"]))
            filled.update(k for k in ("reward", "step_success") if k not in z.files)
    with np.load(files[0], allow_pickle=False) as z:
        features = {k: FeatureSpec(str(z[k].dtype), z[k].shape[1:]) for k in z.files if k not in _SCALARS + _PER_STEP}
        action = FeatureSpec(str(z["action"].dtype), z["action"].shape[1:])
    provenance = {"source": str(Path(src_dir).resolve()), "format": "npz", "filled": sorted(filled)}
    with DatasetWriter.create(
        out_path,
        features=features,
        action=action,
        env_spec=env_spec,
        fps=fps,
        tasks=tasks,
        metadata={**(metadata or {}), "converted_from": provenance},
    ) as writer:
        for path in files:
            writer.add_episode(_episode_from_npz(path, features))
    return len(files)


def export_npz(dataset: EpisodeDataset | str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write every episode of `dataset` as `out_dir/episode_NNNNNN.npz` (uncompressed); returns the files."""
    ds = dataset if isinstance(dataset, EpisodeDataset) else EpisodeDataset(dataset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for record in ds.episodes:
        arrays = ds.episode_arrays(record.index)
        path = out / f"episode_{record.index:06d}.npz"
        np.savez(
            path,
            **{k.removeprefix("obs/"): v for k, v in arrays.items() if k.startswith("obs/")},
            action=arrays["action"],
            reward=arrays["reward"],
            step_success=arrays["success"],
            task=np.array(record.task),
            instruction=np.array(record.instruction),
            seed=np.int64(record.seed),
            success=np.bool_(record.success),
            extra=np.array(json.dumps(record.extra)),
        )
        written.append(path)
    return written


def _episode_from_npz(path: Path, features: dict[str, FeatureSpec]) -> Episode:
    with np.load(path, allow_pickle=False) as z:
        _require(z, path, ("task", "instruction", "seed", "success", "action", *features))
        actions = z["action"]
        length = len(actions)
        success = bool(z["success"])
        if "step_success" in z.files:
            successes = z["step_success"]
        else:
            successes = np.zeros(length, bool)
            successes[-1] = success
        return Episode(
            task=str(z["task"]),
            instruction=str(z["instruction"]),
            seed=int(z["seed"]),
            success=success,
            observations={k: z[k] for k in features},
            actions=actions,
            rewards=z["reward"] if "reward" in z.files else np.zeros(length, np.float32),
            successes=successes,
            extra=json.loads(str(z["extra"])) if "extra" in z.files else {},
        )


def _require(z: Any, path: Path, names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in z.files]
    if missing:
        raise DatasetError(f"{path} lacks {missing}; it has {sorted(z.files)}")

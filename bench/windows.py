"""Training-window throughput: polyact's WindowDataset against per-episode .npz files loaded whole.

Both sides serve the same windows (history 2, chunk 16, one RGB camera and the state by default) in
random order through a torch DataLoader with the same workers and batch size, in the same run. The
baseline is the naive way: every window `np.load`s its episode's arrays whole from an .npz file.
Both datasets sit in the page cache (just written), so this measures CPU cost, not the disk.

polyact is run twice: as it reads by default (images held in memory when the whole feature fits the
reader's memory budget) and with `memory_budget=0` (every frame read from its file).

    python -m polyact.bench.windows [--episodes 100] [--steps 150] [--size 128] [--workers 2]
                                    [--batch-size 64] [--image-compression none|gzip] [--dataset PATH]

`--codecs` instead compares HDF5 filters on the dataset's image frames (size, and CPU time to read one
random frame), the measurement behind the storage choices in docs/storage.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from polyact.bench.common import header
from polyact.bench.loader_throughput import loader_throughput
from polyact.data import DatasetWriter, EpisodeDataset, WindowDataset, collate_windows, export_npz
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode


def build_dataset(root: Path, episodes: int, steps: int, size: int, image_compression: str) -> EpisodeDataset:
    """Render-like episodes of one camera (RGB only) and the state, lengths within +-20% of `steps`."""
    spec = synthetic_env_spec(cameras=("corner",), height=size, width=size, state_dim=39, goal_dim=0)
    features = {k: v for k, v in spec.features().items() if k in ("rgb/corner", "state")}
    rng = np.random.default_rng(0)
    with DatasetWriter.create(
        root,
        features=features,
        action=spec.action_feature(),
        env_spec=spec,
        fps=10.0,
        tasks={t: [] for t in spec.tasks},
        image_compression=image_compression,
    ) as writer:
        for i in range(episodes):
            episode = synthetic_episode(spec, int(rng.integers(0.8 * steps, 1.2 * steps + 1)), seed=i, rendered=True)
            episode.observations = {k: episode.observations[k] for k in features}
            writer.add_episode(episode)
    return EpisodeDataset(root)


class NpzWindows(Dataset):
    """The naive baseline: each item loads its episode's arrays whole from the episode's .npz file."""

    def __init__(
        self,
        files: list[Path],
        lengths: list[int],
        tasks: dict[str, int],
        history: int,
        chunk: int,
        keys: tuple[str, ...],
    ):
        self.files, self.tasks, self.history, self.chunk, self.keys = files, tasks, history, chunk, keys
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> dict[str, Any]:
        e = int(np.searchsorted(self.offsets, i, side="right") - 1)
        t = i - int(self.offsets[e])
        with np.load(self.files[e]) as z:
            obs = {k: z[k] for k in self.keys}
            actions, task, instruction = z["action"], str(z["task"]), str(z["instruction"])
        length = len(actions)
        obs_steps = np.clip(np.arange(t - self.history + 1, t + 1), 0, None)
        act_steps = np.clip(np.arange(t, t + self.chunk), None, length - 1)
        out: dict[str, Any] = {f"obs/{k}": torch.from_numpy(v[obs_steps]) for k, v in obs.items()}
        out["obs_is_pad"] = torch.from_numpy(np.arange(t - self.history + 1, t + 1) < 0)
        out["action"] = torch.from_numpy(actions[act_steps])
        out["action_is_pad"] = torch.from_numpy(np.arange(t, t + self.chunk) >= length)
        out["instruction"] = instruction
        out["task_index"] = torch.tensor(self.tasks[task])
        out["episode_index"] = torch.tensor(e)
        out["timestep"] = torch.tensor(t)
        return out


def throughput(dataset: Dataset, workers: int, batch_size: int, seconds: float) -> tuple[float, float]:
    """Windows/s and CPU microseconds per window of `dataset` (bench/loader_throughput.py)."""
    collate = collate_windows if isinstance(dataset, WindowDataset) else default_collate
    return loader_throughput(dataset, workers, batch_size, seconds, count_key="timestep", collate=collate)


def check_same_windows(a: Dataset, b: Dataset, n: int = 20) -> None:
    """Both sides must serve identical windows, or the comparison means nothing."""
    for i in np.random.default_rng(1).integers(0, len(a), n):
        wa, wb = a[int(i)], b[int(i)]
        for key, value in wa.items():
            same = value == wb[key] if isinstance(value, str) else torch.equal(value, wb[key])
            if not same:
                raise AssertionError(f"window {i}: {key} differs between polyact and the npz baseline")


CODECS: dict[str, dict[str, Any]] = {
    "none, no checksum": {},
    "none": {"fletcher32": True},
    "lzf": {"fletcher32": True, "compression": "lzf"},
    "gzip 1": {"fletcher32": True, "compression": "gzip", "compression_opts": 1},
    "gzip 4": {"fletcher32": True, "compression": "gzip", "compression_opts": 4},
    "shuffle + lzf": {"fletcher32": True, "compression": "lzf", "shuffle": True},
    "shuffle + gzip 1": {"fletcher32": True, "compression": "gzip", "compression_opts": 1, "shuffle": True},
}


def codec_table(ds: EpisodeDataset, key: str, workdir: Path, episodes: int = 10, reads: int = 2000) -> list[str]:
    """Size ratio and CPU time per random one-frame read of feature `key`, one frame per chunk, per filter."""
    frames = [ds.episode_arrays(e, keys=[key])[f"obs/{key}"] for e in range(min(episodes, len(ds)))]
    raw = sum(f.nbytes for f in frames)
    rng = np.random.default_rng(0)
    picks = [(int(e), int(rng.integers(len(frames[e])))) for e in rng.integers(0, len(frames), reads)]
    rows = [f"{key}: {len(frames)} episodes, {raw / 2**20:.0f} MiB raw, one frame per chunk"]
    for name, options in CODECS.items():
        if "shuffle" in options and frames[0].dtype == np.uint8:
            continue  # byte-shuffle does nothing to single bytes
        path = workdir / "codec.h5"
        with h5py.File(path, "w", libver=("v110", "v110")) as f:
            for i, values in enumerate(frames):
                f.create_dataset(str(i), data=values, chunks=(1, *values.shape[1:]), **options)
        with h5py.File(path, "r", rdcc_nbytes=0) as f:
            arrays = [f[str(i)] for i in range(len(frames))]
            start = time.process_time()
            for e, t in picks:
                arrays[e][t]
            read_us = (time.process_time() - start) / reads * 1e6
        rows.append(f"  {name:18s} size 1/{raw / path.stat().st_size:4.2f}   read {read_us:6.0f} us/frame")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=150, help="mean episode length")
    parser.add_argument("--size", type=int, default=128, help="image height and width")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--history", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring time per side")
    parser.add_argument("--image-compression", default="none", choices=("none", "gzip"))
    parser.add_argument("--dataset", type=Path, help="an existing polyact dataset (its first camera and state)")
    parser.add_argument("--workdir", type=Path, help="where to write the datasets (default: a temporary directory)")
    parser.add_argument("--codecs", action="store_true", help="compare HDF5 filters on the image frames instead")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        if args.dataset:
            ds = EpisodeDataset(args.dataset)
            rgb = sorted(k for k in ds.features if k.startswith("rgb/"))[:1]
            keys = (*rgb, "state")
        else:
            ds = build_dataset(Path(tmp) / "polyact", args.episodes, args.steps, args.size, args.image_compression)
            keys = ("rgb/corner", "state")
        if args.codecs:
            print(header("HDF5 filters on image frames (bench/windows.py --codecs)"))
            print(f"dataset: {args.dataset or 'synthetic render-like'}")
            for key in sorted(k for k in ds.features if k.startswith(("rgb/", "depth/")))[:2]:
                print("\n".join(codec_table(ds, key, Path(tmp))))
            return
        npz_files = export_npz(ds, Path(tmp) / "npz")
        print(f"prepared {len(ds)} episodes, {ds.num_steps} steps, in {time.perf_counter() - t0:.0f} s")

        polyact = WindowDataset(ds, args.history, args.chunk, keys=keys)
        tasks = {t: ds.task_index(t) for t in ds.tasks}
        naive = NpzWindows(npz_files, [e.length for e in ds.episodes], tasks, args.history, args.chunk, keys)
        check_same_windows(polyact, naive)
        load_before = _load()

        from_disk = WindowDataset(EpisodeDataset(ds.path, memory_budget=0), args.history, args.chunk, keys=keys)
        held = ds.held_in_memory(keys[0])
        results = {
            "polyact WindowDataset": throughput(polyact, args.workers, args.batch_size, args.seconds),
            "polyact, frames from disk": throughput(from_disk, args.workers, args.batch_size, args.seconds),
            "naive per-episode npz": throughput(naive, args.workers, args.batch_size, args.seconds),
        }
        sizes = {"polyact": _du(ds.path), "npz": _du(Path(tmp) / "npz")}

    print(header("Training-window throughput (bench/windows.py)"))
    source = args.dataset or f"synthetic render-like, image compression {args.image_compression}"
    print(f"dataset: {source}; {len(ds)} episodes, {ds.num_steps} steps; keys {list(keys)}")
    print(
        f"windows: history {args.history}, chunk {args.chunk}; DataLoader: {args.workers} workers, "
        f"batch {args.batch_size}, random order; torch {torch.__version__}"
    )
    where = "held in memory (they fit the memory budget)" if held else "read from disk (over the memory budget)"
    print(f"polyact's default: images {where}; 'frames from disk' is memory_budget=0")
    print(f"size on disk: polyact {sizes['polyact'] / 2**20:.0f} MiB, npz {sizes['npz'] / 2**20:.0f} MiB")
    print(f"1-minute load average before the runs: {load_before} (other jobs on the machine lower windows/s)")
    for name, (rate, cpu_us) in results.items():
        print(f"{name:24s} {rate:9.0f} windows/s   {cpu_us:7.0f} us CPU per window (main + workers)")
    ratio = results["polyact WindowDataset"][0] / results["naive per-episode npz"][0]
    print(f"{'ratio':24s} {ratio:9.1f}x")


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _du(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


if __name__ == "__main__":
    main()

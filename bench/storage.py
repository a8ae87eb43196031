"""Bytes per step and training windows/s of each storage setting, side by side in one run.

One source dataset (synthetic render-like RGB-D, or `--dataset PATH`, e.g. a collected Meta-World one)
is rewritten with each setting by `polyact data convert` (data/recode.py), and each copy is measured:
its episode files' bytes per step (every camera's RGB and depth, state, action), and windows/s through a
DataLoader (history 2, chunk 16, the first camera's RGB and the state, random order), both as polyact
reads by default (frames held in memory when the feature fits the reader's budget) and with
`memory_budget=0` (every frame decoded from its file, as for datasets larger than memory). The first
row, raw frames and float32 depth, is the storage of every dataset written before these settings.

    python -m polyact.bench.storage [--size 64] [--episodes 60] [--steps 150] [--workers 2] [--dataset PATH]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from polyact.bench.common import header
from polyact.bench.windows import throughput
from polyact.data import DatasetWriter, EpisodeDataset, WindowDataset
from polyact.data.recode import ConvertConfig, convert, episode_bytes
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode

SETTINGS = {
    "raw, float32 depth (before)": ("none", "float32"),
    "gzip, float32 depth": ("gzip", "float32"),
    "lz4, float32 depth": ("lz4", "float32"),
    "zstd, float32 depth": ("zstd", "float32"),
    "lz4, uint16 mm depth": ("lz4", "uint16_mm"),
    "zstd, uint16 mm depth": ("zstd", "uint16_mm"),
}


def synthetic_source(root: Path, episodes: int, steps: int, size: int) -> Path:
    """Render-like episodes: one RGB-D camera, 39-D state, lengths within +-20% of `steps`."""
    spec = synthetic_env_spec(cameras=("corner",), height=size, width=size, state_dim=39, goal_dim=0)
    rng = np.random.default_rng(0)
    with DatasetWriter.for_spec(root, spec) as writer:
        for i in range(episodes):
            length = int(rng.integers(0.8 * steps, 1.2 * steps + 1))
            writer.add_episode(synthetic_episode(spec, length, seed=i, rendered=True))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="synthetic images: height and width")
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--steps", type=int, default=150, help="synthetic: mean episode length")
    parser.add_argument("--dataset", type=Path, help="measure copies of this dataset instead of a synthetic one")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per loader")
    parser.add_argument("--workdir", type=Path, help="where to write the copies (default: a temporary directory)")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        source = args.dataset or synthetic_source(Path(tmp) / "source", args.episodes, args.steps, args.size)
        described = EpisodeDataset(source)
        rgb = sorted(k for k in described.features if k.startswith("rgb/"))
        keys = (rgb[0], "state")
        shape = described.features[rgb[0]].shape
        for name, (compression, depth) in SETTINGS.items():
            out = Path(tmp) / name.replace(" ", "_").replace(",", "")
            convert(ConvertConfig(str(source), str(out), image_compression=compression, depth_storage=depth))
            per_step = episode_bytes(out) / described.num_steps
            held = EpisodeDataset(out)
            rates = [
                throughput(WindowDataset(ds, 2, 16, keys=keys), args.workers, args.batch_size, args.seconds)[0]
                for ds in (held, EpisodeDataset(out, memory_budget=0))
            ]
            rows.append((name, per_step, held.held_in_memory(keys[0]), *rates))

    print(header("storage settings: bytes per step and training windows/s (bench/storage.py)"))
    print(
        f"source: {source if args.dataset else 'synthetic render-like'}; "
        f"{described.num_steps} steps of {len(described)} episodes"
    )
    print(f"features: {', '.join(f'{k} {s.dtype}{list(s.shape)}' for k, s in described.features.items())}")
    print(
        f"windows: history 2, chunk 16, keys {list(keys)} ({shape[0]}x{shape[1]}), "
        f"{args.workers} workers, batch {args.batch_size}"
    )
    before = rows[0][1]
    print("\n| setting | bytes per step | vs before | windows/s (default read) | windows/s (frames from disk) |")
    print("|---|---|---|---|---|")
    for name, per_step, held, default_rate, disk_rate in rows:
        where = "held in memory" if held else "from disk"
        print(
            f"| {name} | {per_step / 1024:.2f} KiB | 1/{before / per_step:.1f} | {default_rate:,.0f} ({where}) | "
            f"{disk_rate:,.0f} |"
        )


if __name__ == "__main__":
    main()

"""Bytes per step and training windows/s of each storage setting, side by side in one run.

One source dataset (synthetic render-like RGB-D, or the first `--episodes` episodes of `--dataset PATH`,
e.g. a collected Meta-World one) is rewritten with each setting by `polyact data convert`
(data/recode.py), and each copy is measured: its episode files' bytes per step (every camera's RGB and
depth, state, action), the same without depth (what a LeRobot dataset, which stores no depth, holds),
the RGB error of lossy settings against the source, and windows/s through a DataLoader (history 2,
chunk 16, the first camera's RGB and the state, random order), both as polyact reads by default
(frames held in memory when the feature fits the reader's budget) and with `memory_budget=0` (every
frame decoded from its file, as for datasets larger than memory), with the CPU time per window (which
other jobs on the machine inflate much less than they cut windows/s). The first row, raw frames and
float32 depth, is the storage of every dataset written before these settings.

The last row is the source exported to LeRobot v3 by `polyact data export-lerobot`, which encodes as
LeRobot 0.4.4 records (AV1, a keyframe every 2 frames, crf 30): its bytes per step (every file, parquet
and metadata included), RGB error, and the CPU time LeRobot's video decoding of a window costs
(`video_window_cpu`, a lower bound on its CPU per window), measured in the same run. `lerobot` pins
torch < 2.11 and cannot run beside polyact: with `--lerobot-python` (the python of an environment that
has LeRobot, see bench/lerobot_windows.py) LeRobot's own DataLoader reads the export in the same run,
with the same loader settings, for its windows/s and CPU per window; without it, its windows/s are
LeRobot's figure recorded on this machine (LEROBOT_WINDOWS_PER_S, /work/shared/notes/field.md).

    python -m polyact.bench.storage [--size 64] [--episodes 60] [--steps 150] [--workers 2] [--dataset PATH]
                                    [--lerobot-python /work/lerobot_venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from polyact.bench.common import header
from polyact.bench.windows import throughput
from polyact.data import DatasetWriter, EpisodeDataset, WindowDataset
from polyact.data.format import open_episode_file
from polyact.data.lerobot_export import LeRobotExportConfig
from polyact.data.lerobot_export import run as export_lerobot
from polyact.data.lerobot_import import LeRobotImportConfig
from polyact.data.lerobot_import import run as import_lerobot
from polyact.data.lerobot_layout import load_info, read_episodes
from polyact.data.recode import ConvertConfig, convert, episode_bytes
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.errors import DatasetError

SETTINGS = {  # name: (image_compression, depth_storage, image_quality)
    "raw, float32 depth (before)": ("none", "float32", 75),
    "gzip, float32 depth": ("gzip", "float32", 75),
    "lz4, float32 depth": ("lz4", "float32", 75),
    "**zstd, float32 depth (default)**": ("zstd", "float32", 75),
    "zstd, uint16 mm depth": ("zstd", "uint16_mm", 75),
    "webp q75 RGB (lossy), zstd float32 depth": ("webp", "float32", 75),
    "webp q90 RGB (lossy), zstd float32 depth": ("webp", "float32", 90),
    "jpeg q75 RGB (lossy), zstd float32 depth": ("jpeg", "float32", 75),
    "jpeg q90 RGB (lossy), zstd float32 depth": ("jpeg", "float32", 90),
}
LEROBOT_ROW = "LeRobot v3 (AV1 crf 30, keyframe every 2; no depth)"
# LeRobot 0.4.4 reading a 60-episode 64x64 Meta-World v3 dataset: history 2, chunk 16, batch 64, 2 workers,
# PyAV decoding, on this project's 2-core development machine (/work/shared/notes/field.md).
LEROBOT_WINDOWS_PER_S = 378


def synthetic_source(root: Path, episodes: int, steps: int, size: int) -> Path:
    """Render-like episodes: one RGB-D camera, 39-D state, lengths within +-20% of `steps`."""
    spec = synthetic_env_spec(cameras=("corner",), height=size, width=size, state_dim=39, goal_dim=0)
    rng = np.random.default_rng(0)
    with DatasetWriter.for_spec(root, spec, image_compression="none") as writer:
        for i in range(episodes):
            length = int(rng.integers(0.8 * steps, 1.2 * steps + 1))
            writer.add_episode(synthetic_episode(spec, length, seed=i, rendered=True))
    return root


def subset_source(root: Path, dataset: Path, episodes: int) -> Path:
    """The first `episodes` episodes of `dataset`, stored raw (as before the settings)."""
    source = EpisodeDataset(dataset)
    with DatasetWriter.create(
        root,
        features=source.features,
        action=source.action_feature,
        env_spec=source.env_spec,
        fps=source.fps,
        tasks=source.tasks,
        image_compression="none",
    ) as writer:
        for index in range(min(episodes, len(source))):
            writer.add_episode(source.load_episode(index))
    return root


def depth_bytes(root: Path) -> int:
    """Bytes the depth arrays take in a dataset's episode files."""
    total = 0
    for path in (root / "episodes").glob("*.h5"):
        with open_episode_file(path) as f:
            total += sum(ds.id.get_storage_size() for ds in f["obs/depth"].values())
    return total


def rgb_error(copy: EpisodeDataset, source: EpisodeDataset, key: str, episodes: int = 5) -> tuple[float, float]:
    """PSNR (dB) and mean absolute error (of 255) of the copy's frames of `key` against the source's."""
    squared, absolute, count = 0.0, 0.0, 0
    for index in range(min(episodes, len(source))):
        got = copy.episode_arrays(index, [key])[f"obs/{key}"].astype(np.float64)
        diff = got - source.episode_arrays(index, [key])[f"obs/{key}"]
        squared, absolute, count = squared + (diff**2).sum(), absolute + np.abs(diff).sum(), count + diff.size
    psnr = float("inf") if squared == 0 else 10 * np.log10(255**2 / (squared / count))
    return psnr, absolute / count


def lerobot_row(source: Path, out: Path, key: str) -> tuple[float, tuple[float, float], float]:
    """Bytes (every file) and RGB error of `source` exported to LeRobot v3 with LeRobot's encoding (the
    error measured on the export imported back), and the CPU time a window's frames cost to decode."""
    export_lerobot(LeRobotExportConfig(src=str(source), out=str(out)))
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    back = import_lerobot(LeRobotImportConfig(src=str(out), out=str(out.with_name(f"{out.name}_back"))))
    return total, rgb_error(EpisodeDataset(back), EpisodeDataset(source), key), video_window_cpu(out, key)


def video_window_cpu(root: Path, key: str, windows: int = 300, history: int = 2) -> float:
    """CPU microseconds to decode one random window's `history` frames from a LeRobot export as LeRobot
    0.4.4's PyAV backend does for every item (torchvision's VideoReader): open the episode's video file,
    seek to the keyframe before the first frame, decode and convert every frame to RGB until the last.
    Only this part of LeRobot's work (not its parquet rows, tensors or collation): a lower bound."""
    info = load_info(root)
    episodes = read_episodes(root)
    camera = f"observation.images.{key.removeprefix('rgb/')}"
    rng = np.random.default_rng(0)
    start = time.process_time()
    for _ in range(windows):
        row = episodes[rng.integers(len(episodes))]
        t = int(rng.integers(row["length"]))
        times = row[f"videos/{camera}/from_timestamp"] + np.arange(max(t - history + 1, 0), t + 1) / info["fps"]
        where = {k: row[f"videos/{camera}/{k}"] for k in ("chunk_index", "file_index")}
        with av.open(str(root / info["video_path"].format(video_key=camera, **where))) as container:
            stream = container.streams.video[0]
            container.seek(int(times[0] / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                frame.to_ndarray(format="rgb24")
                if frame.time >= times[-1] - 1e-4:
                    break
    return (time.process_time() - start) / windows * 1e6


def lerobot_loader(python: Path, root: Path, args: argparse.Namespace) -> dict:
    """LeRobot's own windows/s and CPU per window on the export at `root` (bench/lerobot_windows.py run by
    `python`, an interpreter with LeRobot), with the loader settings of the other rows."""
    script = Path(__file__).with_name("lerobot_windows.py")
    loader = ["--seconds", str(args.seconds), "--workers", str(args.workers), "--batch-size", str(args.batch_size)]
    done = subprocess.run([str(python), str(script), str(root), *loader], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{python} {script.name} failed on the LeRobot export:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="synthetic images: height and width")
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--steps", type=int, default=150, help="synthetic: mean episode length")
    parser.add_argument("--dataset", type=Path, help="measure copies of this dataset's first episodes instead")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per loader")
    parser.add_argument("--workdir", type=Path, help="where to write the copies (default: a temporary directory)")
    parser.add_argument(
        "--lerobot-python", type=Path, help="measure LeRobot's windows/s in this run with this interpreter"
    )
    args = parser.parse_args()
    if args.lerobot_python and not args.lerobot_python.is_file():
        parser.error(f"--lerobot-python {args.lerobot_python}: no such file (the python of a LeRobot environment)")

    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        if args.dataset:
            source = subset_source(Path(tmp) / "source", args.dataset, args.episodes)
        else:
            source = synthetic_source(Path(tmp) / "source", args.episodes, args.steps, args.size)
        described = EpisodeDataset(source)
        rgb = sorted(k for k in described.features if k.startswith("rgb/"))
        keys = (rgb[0], "state")
        shape = described.features[rgb[0]].shape
        steps = described.num_steps
        for name, (compression, depth, quality) in SETTINGS.items():
            out = Path(tmp) / f"{compression}_{depth}_{quality}"
            cfg = ConvertConfig(str(source), str(out), compression, depth, quality)
            try:
                convert(cfg)
            except DatasetError as e:  # e.g. depth beyond what millimetres hold
                rows.append((name, str(e).split(";")[0]))
                continue
            total = episode_bytes(out)
            held = EpisodeDataset(out)
            error = rgb_error(held, described, rgb[0])
            measured = [
                throughput(WindowDataset(ds, 2, 16, keys=keys), args.workers, args.batch_size, args.seconds)
                for ds in (held, EpisodeDataset(out, memory_budget=0))
            ]
            rows.append(
                (
                    name,
                    total / steps,
                    (total - depth_bytes(out)) / steps,
                    error,
                    held.held_in_memory(keys[0]),
                    *measured,
                )
            )
        lerobot = lerobot_row(source, Path(tmp) / "lerobot", rgb[0])
        loader = lerobot_loader(args.lerobot_python, Path(tmp) / "lerobot", args) if args.lerobot_python else None

    print(header("storage settings: bytes per step and training windows/s (bench/storage.py)"))
    what = f"first {len(described)} episodes of {args.dataset}" if args.dataset else "synthetic render-like"
    print(f"source: {what}; {steps} steps of {len(described)} episodes")
    print(f"features: {', '.join(f'{k} {s.dtype}{list(s.shape)}' for k, s in described.features.items())}")
    print(
        f"windows: history 2, chunk 16, keys {list(keys)} ({shape[0]}x{shape[1]}), "
        f"{args.workers} workers, batch {args.batch_size}, {args.seconds:g} s per loader"
    )
    if loader:
        print(
            f"LeRobot row read by LeRobot {loader['lerobot']} itself (torch {loader['torch']}, "
            f"{loader['video_backend']} video decoding, cameras {loader['cameras']})"
        )
    before = rows[0][1]
    print(
        "\n| setting | bytes per step | vs before | without depth | RGB PSNR, mean abs error | "
        "windows/s (default read) | windows/s, CPU per window (frames from disk) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if len(row) == 2:
            print(f"| {row[0]} | refused: {row[1]} | | | | | |")
            continue
        name, per_step, no_depth, (psnr, mae), held, (held_rate, _), (disk_rate, disk_cpu) = row
        where = "held in memory" if held else "from disk"
        error = "exact" if mae == 0 else f"{psnr:.1f} dB, {mae:.2f}"
        print(
            f"| {name} | {per_step / 1024:.2f} KiB | 1/{before / per_step:.1f} | {no_depth / 1024:.2f} KiB | {error} | "
            f"{held_rate:,.0f} ({where}) | {disk_rate:,.0f}, {disk_cpu:.0f} us |"
        )
    total, (psnr, mae), decode = lerobot
    decoding = f">= {decode:.0f} us (its video decoding alone, one process)"
    if loader:
        lerobot_rate = loader["windows_per_s"]
        rate = f"{lerobot_rate:,.0f} (LeRobot {loader['lerobot']}, measured in this run)"
        from_disk = f"{lerobot_rate:,.0f}, {loader['cpu_us_per_window']:.0f} us; {decoding}"
    else:  # LeRobot's recorded figure is for 64x64 frames
        lerobot_rate = LEROBOT_WINDOWS_PER_S if shape[:2] == (64, 64) else None
        rate = f"{LEROBOT_WINDOWS_PER_S} (LeRobot 0.4.4 at 64x64, not rerun)" if lerobot_rate else "not measured"
        from_disk = f"-, {decoding}"
    print(
        f"| {LEROBOT_ROW} | {total / steps / 1024:.2f} KiB | 1/{before * steps / total:.1f} | "
        f"{total / steps / 1024:.2f} KiB | {psnr:.1f} dB, {mae:.2f} | {rate} | {from_disk} |"
    )
    print("\nagainst the LeRobot row: bytes without depth" + (", windows/s from disk" if lerobot_rate else ""))
    for row in rows[1:]:
        if len(row) > 2:
            speed = f", {row[-1][0] / lerobot_rate:.1f}x the windows/s" if lerobot_rate else ""
            print(f"  {row[0]}: {row[2] * steps / total:.2f}x the bytes{speed}")


if __name__ == "__main__":
    main()

"""LeRobot's own training-window throughput on a LeRobot v3 dataset, for bench/storage.py's LeRobot row.

Run by a separate interpreter that has LeRobot: `lerobot` pins torch < 2.11 and cannot share polyact's
environment, so this file imports only lerobot, torch, the standard library and its neighbour
loader_throughput.py (torch only), never polyact. It opens the dataset from its local root with
LeRobot's `LeRobotDataset` (offline: no hub access), asks for the windows polyact's bench reads (history
2 of the first camera and the state, a chunk of 16 actions) by `delta_timestamps`, and measures them with
loader_throughput.py, the code of polyact's rows (batch 64, 2 workers, random order, 5 warm-up batches,
then `--seconds`). It prints one JSON line: windows/s, CPU microseconds per window (main process and
workers, from getrusage), versions and video backend.
LeRobot decodes every camera of the dataset for each item, not only the first.

The environment, outside the repository (the CUDA torch it pulls takes ~8 GB):

    python3 -m venv /work/lerobot_venv && /work/lerobot_venv/bin/pip install lerobot==0.4.4
    /work/lerobot_venv/bin/python bench/lerobot_windows.py LEROBOT_DIR [--seconds 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch

# run as a script, this file's folder is on sys.path: the measurement of every other loader row
from loader_throughput import loader_throughput


def open_windows(root: Path, history: int, chunk: int):
    """LeRobot's dataset at `root`, serving for each frame t the first camera and the state at t-history+1..t
    and the actions at t..t+chunk-1 (clamped to the episode, with LeRobot's `*_is_pad` masks). Imported
    here: huggingface's libraries read the offline and cache settings of the environment when imported."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata("local/bench", root=root)
    if not meta.camera_keys:
        raise SystemExit(f"{root}: the dataset has no camera; the bench reads the first camera and the state")
    camera = sorted(meta.camera_keys)[0]
    past = [(i - history + 1) / meta.fps for i in range(history)]
    deltas = {camera: past, "observation.state": past, "action": [i / meta.fps for i in range(chunk)]}
    # PyAV, as LeRobot's recorded figure; its default here, torchcodec, needs FFmpeg's shared libraries
    return LeRobotDataset("local/bench", root=root, delta_timestamps=deltas, video_backend="pyav")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="a LeRobot v3 dataset (e.g. from `polyact data export-lerobot`)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time after the warm-up")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--history", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=16)
    args = parser.parse_args()
    if not (args.root / "meta" / "info.json").is_file():
        parser.error(f"{args.root} is not a LeRobot v3 dataset: it has no meta/info.json")

    with tempfile.TemporaryDirectory() as cache:
        os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")  # a local root, never the hub
        os.environ["HF_DATASETS_CACHE"] = cache  # LeRobot's parquet-to-arrow copies, gone after the run
        dataset = open_windows(args.root, args.history, args.chunk)
        rate, cpu_us = loader_throughput(dataset, args.workers, args.batch_size, args.seconds, count_key="index")
    result = {
        "windows_per_s": rate,
        "cpu_us_per_window": cpu_us,
        "frames": dataset.num_frames,
        "cameras": dataset.meta.camera_keys,
        "lerobot": version("lerobot"),
        "torch": torch.__version__,
        "video_backend": dataset.video_backend,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

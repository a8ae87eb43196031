"""The training loop against its bare step, on the quickstart's setup, in one run.

- loop: `polyact.train.train` itself (train/loop.py) on a real dataset on disk, with its DataLoader
  worker, EMA, logging and checkpoints, timed from its own metrics (the first log interval, which holds
  the warm-up, is left out);
- bare step: the same policy and optimiser on one batch held in memory: forward, backward, gradient
  clipping, fused AdamW (as the loop's); nothing else.

Then where the loop's time goes, each part timed alone with the loop's own objects: drawing a batch from
the loader, forward + backward, the optimiser step, the EMA update, and a checkpoint (spread over
`checkpoint_every` steps). Rounds alternate loop and bare step; medians are printed.

    python -m polyact.bench.train_loop [--steps 300] [--rounds 2] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from polyact.bench.common import header
from polyact.data import DatasetWriter, EpisodeDataset, WindowDataset, collate_windows
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.policies import build_policy
from polyact.quickstart import QuickstartConfig
from polyact.train import TrainConfig, train
from polyact.train.checkpoint import save_checkpoint
from polyact.train.config import OptimConfig
from polyact.train.distributed import setup
from polyact.train.ema import EMA


def make_dataset(path: Path, episodes: int) -> None:
    """The quickstart's shapes: its camera and image size, 4-D state, no goal, 4-D actions; rendered-like images."""
    quickstart = QuickstartConfig()
    size = quickstart.image_size
    spec = synthetic_env_spec(cameras=(quickstart.camera,), height=size, width=size, state_dim=4, goal_dim=0)
    writer = DatasetWriter.for_spec(path, spec)
    with writer:
        for seed in range(episodes):
            writer.add_episode(synthetic_episode(spec, 80, seed=seed, rendered=True))


def config(dataset: Path, out: Path, steps: int, batch: int) -> TrainConfig:
    return TrainConfig(
        dataset=str(dataset),
        out=str(out),
        policy=QuickstartConfig().policy,
        steps=steps,
        batch_size=batch,
        optim=OptimConfig(lr=1e-3, warmup_steps=10),
        num_workers=1,  # as the quickstart
        checkpoint_every=500,  # as the quickstart
        log_every=steps // 6,
        progress=False,
    )


def loop_samples_per_s(cfg: TrainConfig) -> float:
    train(cfg)
    records = [json.loads(line) for line in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["samples_per_s"] for r in records[1:])


def bare_step(cfg: TrainConfig, steps: int) -> tuple[float, dict[str, float]]:
    """Samples/s of the bare step, and the seconds per step of each part of the loop timed alone."""
    dataset = EpisodeDataset(cfg.dataset)
    instructions = [i for per_task in dataset.tasks.values() for i in per_task]
    torch.manual_seed(0)
    policy = build_policy(cfg.policy, dataset.env_spec, dataset.stats, instructions).train()
    keys = [k for k in (f"rgb/{QuickstartConfig().camera}", "state") if k in dataset.features]
    windows = WindowDataset(dataset, history=policy.config.history, chunk=policy.config.chunk, keys=keys)
    loader = torch.utils.data.DataLoader(
        windows, batch_size=cfg.batch_size, shuffle=True, num_workers=1, collate_fn=collate_windows, drop_last=True
    )
    batches = iter(loader)
    batch = next(batches)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3, fused=True)  # as the loop's
    ema = EMA(policy, cfg.ema_decay)
    generator = torch.Generator()
    parts = {"data": 0.0, "forward+backward": 0.0, "optimiser": 0.0, "EMA": 0.0}
    for step in range(steps + 5):
        if step == 5:  # warm-up done
            began, parts = time.perf_counter(), dict.fromkeys(parts, 0.0)
        t0 = time.perf_counter()
        generator.manual_seed(step)
        loss, _ = policy.compute_loss(batch, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        t1 = time.perf_counter()
        optimizer.step()
        t2 = time.perf_counter()
        parts["forward+backward"] += t1 - t0
        parts["optimiser"] += t2 - t1
    bare = steps * cfg.batch_size / (time.perf_counter() - began)
    t0 = time.perf_counter()
    for _ in range(20):
        ema.update()
    parts["EMA"] = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    for _ in range(20):
        try:
            next(batches)
        except StopIteration:
            batches = iter(loader)
    parts["data"] = (time.perf_counter() - t0) / 20  # waiting for the worker, with nothing else running
    with tempfile.TemporaryDirectory() as tmp:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        t0 = time.perf_counter()
        save_checkpoint(Path(tmp), 1, policy, policy, optimizer, scheduler, {}, ema, setup("cpu"), 1)
        parts["checkpoint (per step)"] = (time.perf_counter() - t0) / cfg.checkpoint_every
    parts["forward+backward"] /= steps
    parts["optimiser"] /= steps
    return bare, parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=60)
    args = parser.parse_args()
    print(header("the training loop against its bare step (quickstart setup)"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {args.steps} steps")
    loops, bares, parts = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        make_dataset(Path(tmp) / "data", args.episodes)
        for r in range(args.rounds):
            cfg = config(Path(tmp) / "data", Path(tmp) / f"run{r}", args.steps, args.batch)
            loops.append(loop_samples_per_s(cfg))
            bare, timed = bare_step(cfg, args.steps)
            bares.append(bare)
            parts.append(timed)
            print(f"round {r}: loop {loops[-1]:.0f} samples/s, bare step {bare:.0f} samples/s")
    loop, bare = statistics.median(loops), statistics.median(bares)
    print(f"\n| | samples/s |\n|---|---|\n| loop (train/loop.py) | {loop:.0f} |\n| bare step | {bare:.0f} |")
    print(f"| loop / bare | {loop / bare:.2f} |\n")
    print("| part of a step, timed alone | ms |\n|---|---|")
    for name in parts[0]:
        print(f"| {name} | {1000 * statistics.median(p[name] for p in parts):.1f} |")


if __name__ == "__main__":
    main()

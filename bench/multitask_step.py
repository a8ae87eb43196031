"""What a training step costs under each multi-task method, against the plain mean loss, in one run.

The quickstart's policy (the MT10 experiment's, docs/multitask.md) on batches of its shapes from a
synthetic dataset of 10 tasks on disk: `uniform` back-propagates the batch's mean loss once; `pcgrad` and
`mgda` take one forward and backward per task present (train/multitask.py); `flat_*` two (the task's
gradient and its sharpness-aware one). Each step: gradients, clipping, fused AdamW, as the training
loop's. Methods alternate in rounds; medians are printed.

    python -m polyact.bench.multitask_step [--steps 5] [--rounds 3] [--batch 64]
"""

from __future__ import annotations

import argparse
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
from polyact.train.distributed import setup
from polyact.train.multitask import METHODS, TaskGradients

TASKS = tuple(f"task{i}" for i in range(10))


def first_batch(path: Path, batch: int) -> tuple[EpisodeDataset, dict]:
    """A dataset of the quickstart's shapes, two episodes per task, and one shuffled batch of its windows."""
    quickstart = QuickstartConfig()
    size = quickstart.image_size
    spec = synthetic_env_spec(
        cameras=(quickstart.camera,), height=size, width=size, state_dim=4, goal_dim=0, tasks=TASKS
    )
    with DatasetWriter.for_spec(path, spec) as writer:
        for seed in range(2 * len(TASKS)):
            writer.add_episode(synthetic_episode(spec, 60, seed=seed, rendered=True))
    dataset = EpisodeDataset(path)
    cfg = quickstart.policy
    windows = WindowDataset(dataset, history=cfg.history, chunk=cfg.chunk, keys=[f"rgb/{quickstart.camera}", "state"])
    loader = torch.utils.data.DataLoader(
        windows, batch_size=batch, shuffle=True, collate_fn=collate_windows, generator=torch.Generator().manual_seed(0)
    )
    return dataset, next(iter(loader))


def seconds_per_step(method: str, dataset: EpisodeDataset, batch: dict, steps: int) -> float:
    torch.manual_seed(0)
    instructions = [i for per_task in dataset.tasks.values() for i in per_task]
    policy = build_policy(QuickstartConfig().policy, dataset.env_spec, dataset.stats, instructions).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3, fused=True)
    per_task = None if method == "uniform" else TaskGradients(policy, method, setup("cpu"))
    generator = torch.Generator()
    for step in range(steps + 1):  # the first step warms up
        if step == 1:
            began = time.perf_counter()
        generator.manual_seed(step)
        optimizer.zero_grad(set_to_none=True)
        if per_task is None:
            loss, _ = policy.compute_loss(batch, generator=generator)
            loss.backward()
        else:
            per_task.step(batch, generator, order_seed=step)
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
    return (time.perf_counter() - began) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    print(header("a training step under each multi-task method (quickstart policy, 10 tasks)"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    methods = METHODS  # uniform first: the baseline
    timings: dict[str, list[float]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        dataset, batch = first_batch(Path(tmp) / "data", args.batch)
        tasks_present = len(torch.unique(batch["task_index"]))
        for _ in range(args.rounds):
            for method in methods:
                timings[method].append(seconds_per_step(method, dataset, batch, args.steps))
    print(f"{tasks_present} tasks in the batch; medians of {args.rounds} rounds of {args.steps} steps")
    print("| method | s / step | samples/s | cost vs uniform |")
    print("|---|---|---|---|")
    base = statistics.median(timings["uniform"])
    for method in methods:
        t = statistics.median(timings[method])
        print(f"| {method} | {t:.3f} | {args.batch / t:.0f} | {t / base:.1f}x |")


if __name__ == "__main__":
    main()

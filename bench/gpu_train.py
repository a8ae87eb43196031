"""Training throughput on a GPU: fp32 against bf16 autocast against bf16 + torch.compile.

The step is the one `polyact train` takes (the policy's forward returns the loss; backward; fused
AdamW), on a fixed synthetic Meta-World-like batch already on the device, so only the model is timed.
Each size and head is measured in all three modes in the same run, interleaved round by round; the
ratio is against fp32 of the same model. Peak memory is the allocator's high-water mark of each mode.

    python -m polyact.bench.gpu_train [--sizes small base] [--heads l1 flow] [--batch 256] [--rounds 5]

Each size sees the camera resolution it is made for (`small` 64x64, `base` 128x128: its 8x8 token grid
needs an 8x8 feature map) unless --image sets one for all.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from polyact.bench.common import header
from polyact.bench.policies import INSTRUCTIONS, make_batch, setup
from polyact.policies import HeadConfig, PolicyConfig, VLAPolicy, build_policy

MODES = ("fp32", "bf16", "bf16+compile")
IMAGE_OF_SIZE = {"tiny": 32, "small": 64, "base": 128}


def build(size: str, head: str, spec: Any, stats: dict[str, Any]) -> VLAPolicy:
    torch.manual_seed(0)
    cfg = PolicyConfig(size=size, head=HeadConfig(name=head), history=1, chunk=8, replan_every=4)
    samples = np.random.default_rng(0).uniform(-1, 1, (2000, 4)).astype(np.float32)
    return build_policy(cfg, spec, stats, INSTRUCTIONS, action_samples=samples)


def on_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def stepper(policy: VLAPolicy, mode: str, batch: dict[str, Any]) -> Callable[[], None]:
    """One training step of `policy` in `mode`, as a closure (its own optimizer)."""
    forward = torch.compile(policy) if mode.endswith("compile") else policy
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if mode.startswith("bf16") else nullcontext()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4, fused=True)

    def step() -> None:
        with autocast:
            loss, _ = forward(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def measure(steps: dict[str, Callable[[], None]], rounds: int, reps: int) -> dict[str, float]:
    """Median seconds per step of each mode, rotating which goes first, after three warm-up steps each."""
    for step in steps.values():
        for _ in range(3):
            step()
    torch.cuda.synchronize()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(reps):
                steps[name]()
            torch.cuda.synchronize()
            times[name].append((time.perf_counter() - t) / reps)
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_memory(step: Callable[[], None]) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["small", "base"])
    parser.add_argument("--heads", nargs="+", default=["l1", "flow"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--image", type=int, default=0, help="camera resolution (square); 0 = the size's own")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA device; bench/policies.py measures the CPU")
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    print(header("polyact training throughput on a GPU"))
    print(
        f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}; batch {args.batch}, chunk 8; "
        f"medians of {args.rounds} interleaved rounds of {args.reps} steps\n"
    )
    print("| size | camera | head | params | mode | samples/s | ms/step | peak GiB | vs fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        image = args.image or IMAGE_OF_SIZE[size]
        spec, stats = setup(image)
        batch = on_device(make_batch(spec, args.batch, 8), device)
        for head in args.heads:
            policies = {mode: build(size, head, spec, stats).to(device).train() for mode in MODES}
            steps = {mode: stepper(policies[mode], mode, batch) for mode in MODES}
            seconds = measure(steps, args.rounds, args.reps)
            params = sum(p.numel() for p in policies["fp32"].parameters()) / 1e6
            for mode in MODES:
                memory = peak_memory(steps[mode])
                throughput = args.batch / seconds[mode]
                print(
                    f"| {size} | {image}x{image} | {head} | {params:.1f}M | {mode} | {throughput:,.0f} | "
                    f"{seconds[mode] * 1e3:.1f} | {memory:.2f} | {seconds['fp32'] / seconds[mode]:.2f}x |",
                    flush=True,
                )
            del policies, steps
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

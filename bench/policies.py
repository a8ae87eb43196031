"""Policy speed on the CPU: training throughput and batch-1 latency of every head at the `small` size.

Each figure is measured side by side, in the same run and interleaved round by round, with a plain
reference of the same model and weights:

- training: ours feeds the convs the channels-last view of the uint8 frames (no copy) with channels-last
  weights and steps a fused AdamW; the reference copies frames to contiguous NCHW, keeps default weights
  and steps the for-loop AdamW (`foreach=False`);
- inference: ours is `predict_chunk` (inference_mode, instruction features cached per string,
  channels-last); the reference is a plain eager forward with autograd on, the instruction encoded
  every call and NCHW copies. Both must return the same chunk (checked).

A Meta-World-like setup: one 64x64 camera (default), state 4, goal 3, 4-D actions, history 1, chunk 8.
Medians over rounds; the machine may be shared, so compare ratios, not absolute figures, across runs.

    python -m polyact.bench.policies [--size 64] [--batch 64] [--rounds 5] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from polyact.bench.common import header
from polyact.contract import ActionSpec, CameraSpec, EnvSpec
from polyact.policies import HeadConfig, PolicyConfig, VLAPolicy, build_policy

HEADS: list[tuple[str, dict[str, Any]]] = [
    ("l1", {}),
    ("uniform_bins", {}),
    ("uniform_bins/ar", {"decoding": "autoregressive"}),
    ("adaptive_grid", {}),
    ("diffusion", {}),
    ("flow", {}),
]
INSTRUCTIONS = ["reach the goal", "push the puck to the goal", "pick and place the puck", "open the door"]


def setup(size: int) -> tuple[EnvSpec, dict[str, Any]]:
    spec = EnvSpec(
        suite="bench",
        tasks=("t",),
        cameras=(CameraSpec("corner", size, size),),
        state_names=("x", "y", "z", "grip"),
        goal_names=("gx", "gy", "gz"),
        action=ActionSpec(("dx", "dy", "dz", "grip"), (-1.0,) * 4, (1.0,) * 4, "delta position, gripper"),
        control_hz=80.0,
        max_episode_steps=500,
    )

    def feat(dim: int, mean: float, std: float) -> dict[str, Any]:
        ones = np.ones(dim, np.float32)
        return {
            "mean": mean * ones,
            "std": std * ones,
            "min": (mean - 3 * std) * ones,
            "max": (mean + 3 * std) * ones,
            "q01": (mean - 2 * std) * ones,
            "q99": (mean + 2 * std) * ones,
            "count": 1000,
        }

    stats = {
        "action": feat(4, 0.0, 0.5),
        "state": feat(4, 0.0, 0.2),
        "goal": feat(3, 0.0, 0.2),
        "rgb/corner": feat(3, 110.0, 60.0),
    }
    return spec, stats


def make_batch(spec: EnvSpec, batch: int, chunk: int, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    cam = spec.cameras[0]
    return {
        f"obs/rgb/{cam.name}": torch.randint(
            0, 256, (batch, 1, cam.height, cam.width, 3), generator=g, dtype=torch.uint8
        ),
        "obs/state": torch.randn(batch, 1, 4, generator=g) * 0.2,
        "obs/goal": torch.randn(batch, 1, 3, generator=g) * 0.2,
        "obs_is_pad": torch.zeros(batch, 1, dtype=torch.bool),
        "action": (torch.rand(batch, chunk, 4, generator=g) * 2 - 1) * 0.8,
        "action_is_pad": torch.zeros(batch, chunk, dtype=torch.bool),
        "instruction": [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(batch)],
    }


def build(name: str, overrides: dict[str, Any], spec: EnvSpec, stats: dict[str, Any], steps: int = 10) -> VLAPolicy:
    torch.manual_seed(0)
    head = HeadConfig(name=name.split("/")[0], sample_steps=steps, **overrides)
    cfg = PolicyConfig(size="small", head=head, history=1, chunk=8, replan_every=4)
    samples = np.random.default_rng(0).uniform(-1, 1, (2000, 4)).astype(np.float32)
    return build_policy(cfg, spec, stats, INSTRUCTIONS, action_samples=samples)


def pair(policy: VLAPolicy) -> tuple[VLAPolicy, VLAPolicy]:
    """The policy as built (channels-last convs), and a copy with the same weights in NCHW."""
    ref = copy.deepcopy(policy).to(memory_format=torch.contiguous_format)
    ref.channels_last = False
    return policy, ref


def interleaved(ours: Callable[[], None], ref: Callable[[], None], rounds: int, reps: int) -> tuple[float, float]:
    """Median seconds per call of each, alternating which goes first, after one warm-up call each."""
    ours(), ref()
    times: dict[str, list[float]] = {"ours": [], "ref": []}
    for r in range(rounds):
        order = [("ours", ours), ("ref", ref)] if r % 2 == 0 else [("ref", ref), ("ours", ours)]
        for key, fn in order:
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            times[key].append((time.perf_counter() - t) / reps)
    return statistics.median(times["ours"]), statistics.median(times["ref"])


def training_step(policy: VLAPolicy, opt: torch.optim.Optimizer, batch: dict[str, Any]) -> None:
    loss, _ = policy.compute_loss(batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench_training(spec, stats, batch_size: int, rounds: int, reps: int) -> list[str]:
    rows = ["| head | params | ours (samples/s) | reference (samples/s) | ratio |", "|---|---|---|---|---|"]
    batch = make_batch(spec, batch_size, 8)
    for name, overrides in HEADS:
        policy, reference = pair(build(name, overrides, spec, stats).train())
        fused = torch.optim.AdamW(policy.parameters(), lr=1e-4, fused=True)
        loop = torch.optim.AdamW(reference.parameters(), lr=1e-4, foreach=False)
        ours, ref = interleaved(
            lambda p=policy, o=fused: training_step(p, o, batch),
            lambda p=reference, o=loop: training_step(p, o, batch),
            rounds,
            reps,
        )
        params = sum(p.numel() for p in policy.parameters()) / 1e6
        rows.append(
            f"| {name} | {params:.2f}M | {batch_size / ours:.0f} | {batch_size / ref:.0f} | {ref / ours:.2f}x |"
        )
        print(rows[-1], flush=True)
    return rows


def naive_chunk(policy: VLAPolicy, obs: dict[str, Any], noise: torch.Tensor) -> torch.Tensor:
    """The plain eager forward: autograd on, no instruction cache, NCHW copies."""
    policy.text._cache.clear()
    readout = policy.encode(policy.as_batch(obs))
    return policy.normalizer.unnormalize("action", policy.head.sample(readout, noise=noise))


def latency_pair(policy: VLAPolicy, obs: dict[str, Any], rounds: int, reps: int) -> tuple[float, float]:
    noise = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(0))
    policy, reference = pair(policy.eval())

    def ours() -> None:
        policy.predict_chunk(obs, noise=noise)

    def ref() -> None:
        naive_chunk(reference, obs, noise)

    a = policy.predict_chunk(obs, noise=noise)
    b = naive_chunk(reference, obs, noise).detach().numpy()
    if not np.allclose(a, b, atol=1e-4):
        raise AssertionError(f"the optimised and reference chunks differ by {np.abs(a - b).max()}")
    return interleaved(ours, ref, rounds, reps)


def bench_latency(spec, stats, rounds: int, reps: int) -> list[str]:
    rows = ["| head | ours (ms/chunk) | reference (ms/chunk) | ratio |", "|---|---|---|---|"]
    obs = make_batch(spec, 1, 8, seed=1)
    for name, overrides in HEADS:
        ours, ref = latency_pair(build(name, overrides, spec, stats), obs, rounds, reps)
        rows.append(f"| {name} | {ours * 1e3:.1f} | {ref * 1e3:.1f} | {ref / ours:.2f}x |")
        print(rows[-1], flush=True)
    return rows


def bench_steps(spec, stats, rounds: int, reps: int, steps: list[int]) -> list[str]:
    rows = ["| head | steps | ours (ms/chunk) | reference (ms/chunk) | ratio |", "|---|---|---|---|---|"]
    obs = make_batch(spec, 1, 8, seed=1)
    for name in ("diffusion", "flow"):
        for n in steps:
            ours, ref = latency_pair(build(name, {}, spec, stats, steps=n), obs, rounds, reps)
            rows.append(f"| {name} | {n} | {ours * 1e3:.1f} | {ref * 1e3:.1f} | {ref / ours:.2f}x |")
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="camera resolution (square)")
    parser.add_argument("--batch", type=int, default=64, help="training batch size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer repetitions (a smoke run)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds = 2 if args.quick else args.rounds
    reps = 1 if args.quick else 3
    spec, stats = setup(args.size)
    print(header("polyact.policies speed (CPU)"))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; small size, {args.size}x{args.size} camera,"
        f" history 1, chunk 8; medians of {rounds} interleaved rounds\n"
    )
    print(f"## Training throughput (batch {args.batch})")
    bench_training(spec, stats, args.batch, rounds, 1)
    print("\n## Batch-1 inference latency (default sample steps: 10)")
    bench_latency(spec, stats, rounds, reps * 3)
    print("\n## Latency against sampling steps")
    bench_steps(spec, stats, rounds, reps, [1, 5, 10] if args.quick else [1, 5, 10, 20, 50])
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""VLM policy speed on the CPU (policy.backbone=vlm): training samples/s and batch-1 chunk latency of the
tiny random PaliGemma and Idefics3 models (policies/vlm/tiny.py), bf16 autocast side by side with fp32.

Each row runs both precisions on the same policy and batch, interleaved round by round (medians), fp32
being the baseline: training is one AdamW step of `compute_loss` under `torch.autocast("cpu", bfloat16)`
(what `polyact train precision=bf16` runs) or without; the chunk is `predict_chunk` (greedy decoding of
every action token with the KV cache, or the flow expert's Euler steps over one prefix cache). Rows: each
family x fine-tuning mode x head (OpenVLA's 256 bins, H*A tokens a chunk; SpatialVLA's grid cells, H*T
with T = 2 here; pi0's flow action expert, policies/vlm/expert.py, 10 Euler steps of the expert a chunk);
latency with plain weights and with unmerged LoRA adapters.

These tiny models (2 decoder layers of width 32) catch regressions of the code path (prompt building,
decoding, LoRA, grid tokens); they say nothing about a 3B model's cost, which is matmul-bound.
A Meta-World-like setup: one 64x64 camera, 4-D actions, chunk 8, batch 8 for training.

    python -m polyact.bench.vlm [--rounds 5] [--reps 3] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyact.bench.common import header
from polyact.bench.policies import INSTRUCTIONS, interleaved, make_batch, setup
from polyact.policies import HeadConfig, PolicyConfig, build_policy
from polyact.policies.vlm.policy import VLMPolicy
from polyact.policies.vlm.tiny import write_tiny_base

FAMILIES = ("paligemma", "idefics3")
FINETUNES = ("full", "frozen_vision", "lora")
HEADS = {
    "openvla": HeadConfig(name="uniform_bins", decoding="autoregressive"),
    "spatialvla": HeadConfig(name="adaptive_grid"),
    "pi0 flow": HeadConfig(name="flow", sample_steps=10),
}
CHUNK = 8


def build(base: Path, family: str, finetune: str, head: str, spec, stats) -> VLMPolicy:
    torch.manual_seed(0)
    cfg = PolicyConfig(
        backbone="vlm",
        vlm={"path": str(base), "family": family, "finetune": finetune, "lora_rank": 8, "lora_alpha": 16},
        head=HEADS[head],
        chunk=CHUNK,
        replan_every=4,
    )
    samples = np.random.default_rng(0).uniform(-1, 1, (2000, 4)).astype(np.float32)
    return build_policy(cfg, spec, stats, INSTRUCTIONS, action_samples=samples)


def autocast(bf16: bool) -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


def training_step(policy: VLMPolicy, optimizer: torch.optim.Optimizer, batch: dict[str, Any], bf16: bool) -> None:
    with autocast(bf16):
        loss, _ = policy.compute_loss(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def bench_training(bases: dict[str, Path], spec, stats, batch_size: int, rounds: int, reps: int) -> list[str]:
    rows = [
        "| family | finetune | head | trained params | fp32 (samples/s) | bf16 (samples/s) | bf16/fp32 |",
        "|---|---|---|---|---|---|---|",
    ]
    batch = make_batch(spec, batch_size, CHUNK)
    for family in FAMILIES:
        for finetune in FINETUNES:
            for head in HEADS:
                policy = build(bases[family], family, finetune, head, spec, stats).train()
                params = [p for p in policy.parameters() if p.requires_grad]
                optimizer = torch.optim.AdamW(params, lr=1e-5)
                fp32, bf16 = interleaved(
                    lambda p=policy, o=optimizer: training_step(p, o, batch, False),
                    lambda p=policy, o=optimizer: training_step(p, o, batch, True),
                    rounds,
                    reps,
                )
                trained = sum(p.numel() for p in params) / 1e3
                rows.append(
                    f"| {family} | {finetune} | {head} | {trained:.0f}k | {batch_size / fp32:.1f} | "
                    f"{batch_size / bf16:.1f} | {fp32 / bf16:.2f}x |"
                )
                print(rows[-1], flush=True)
    return rows


def bench_latency(bases: dict[str, Path], spec, stats, rounds: int, reps: int) -> list[str]:
    """Batch-1 chunks; `full` stands for every mode without adapters at inference (frozen_vision and merged
    LoRA run the same graph), `lora` for unmerged adapters."""
    rows = [
        "| family | head | weights | per chunk | fp32 (ms/chunk) | bf16 (ms/chunk) | bf16 speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    obs = make_batch(spec, 1, CHUNK, seed=1)
    for family in FAMILIES:
        for head in HEADS:
            for finetune in ("full", "lora"):
                policy = build(bases[family], family, finetune, head, spec, stats).eval()

                def chunk(bf16: bool, policy: VLMPolicy = policy) -> None:
                    with autocast(bf16):
                        policy.predict_chunk(obs)

                fp32, bf16 = interleaved(lambda c=chunk: c(False), lambda c=chunk: c(True), rounds, reps)
                if policy.expert is None:
                    work = f"{CHUNK * policy.head.tokens_per_step} tokens"
                else:
                    work = f"{policy.config.head.sample_steps} expert steps"
                weights = "LoRA adapters" if finetune == "lora" else "plain"
                rows.append(
                    f"| {family} | {head} | {weights} | {work} | {fp32 * 1e3:.0f} | {bf16 * 1e3:.0f} | "
                    f"{fp32 / bf16:.2f}x |"
                )
                print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="training batch size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3, help="calls per round")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 call (a smoke run)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds, reps = (2, 1) if args.quick else (args.rounds, args.reps)
    spec, stats = setup(64)
    print(header("VLM policy on the CPU: fp32 and bf16 autocast"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {rounds} rounds x {reps}")
    with tempfile.TemporaryDirectory() as tmp:
        bases = {f: write_tiny_base(Path(tmp) / f, f, INSTRUCTIONS) for f in FAMILIES}
        print("\n".join(bench_training(bases, spec, stats, args.batch, rounds, reps)))
        print("\n".join(bench_latency(bases, spec, stats, rounds, reps)))


if __name__ == "__main__":
    main()

"""What `policy.vlm.gradient_checkpointing=true` saves and costs with pi0's action expert, on the CPU: the
peak memory allocated during one training step (loss and backward, the weights excluded) and training
samples/s, with checkpointing (ours) side by side with the same policy without it (the baseline), on the
tiny random PaliGemma and Idefics3 models (policies/vlm/tiny.py).

Peak memory: torch.profiler's CPU memory events of the step (`profile_memory=True`), each operator's own
allocations minus frees summed in start order, the running maximum taken; an approximation at operator
granularity, the same for both. Speed: AdamW steps interleaved round by round (medians).
These 2-layer width-32 models show the mechanism, not a 3B model's figures: checkpointing keeps each
layer's input instead of its intermediate activations, so the saving grows with depth and width.

    python -m polyact.bench.vlm_checkpointing [--batch 16] [--rounds 5] [--reps 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch

from polyact.bench.common import header
from polyact.bench.policies import INSTRUCTIONS, interleaved, make_batch, setup
from polyact.policies import HeadConfig, PolicyConfig, build_policy
from polyact.policies.vlm.policy import VLMPolicy
from polyact.policies.vlm.tiny import write_tiny_base

CHUNK = 8


def build(base: Path, family: str, finetune: str, checkpointing: bool, spec, stats) -> VLMPolicy:
    torch.manual_seed(0)
    vlm = {"path": str(base), "family": family, "finetune": finetune, "gradient_checkpointing": checkpointing}
    cfg = PolicyConfig(backbone="vlm", vlm=vlm, head=HeadConfig(name="flow"), chunk=CHUNK, replan_every=4)
    return build_policy(cfg, spec, stats, INSTRUCTIONS).train()


def loss_and_backward(policy: VLMPolicy, batch: dict[str, Any]) -> None:
    loss, _ = policy.compute_loss(batch, torch.Generator().manual_seed(0))
    loss.backward()


def peak_bytes(policy: VLMPolicy, batch: dict[str, Any]) -> int:
    """The step's peak net allocation, from the profiler's per-operator memory (see the module docstring)."""
    policy.zero_grad(set_to_none=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        loss_and_backward(policy, batch)
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    total = peak = 0
    for event in events:
        total += event.self_cpu_memory_usage
        peak = max(peak, total)
    return peak


def step(policy: VLMPolicy, optimizer: torch.optim.Optimizer, batch: dict[str, Any]) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss_and_backward(policy, batch)
    optimizer.step()


def row(base: Path, family: str, finetune: str, spec, stats, batch: dict[str, Any], rounds: int, reps: int) -> str:
    policies = {c: build(base, family, finetune, c, spec, stats) for c in (False, True)}
    memory = {c: peak_bytes(p, batch) / 2**20 for c, p in policies.items()}
    optimizers = {
        c: torch.optim.AdamW([q for q in p.parameters() if q.requires_grad], lr=1e-5) for c, p in policies.items()
    }
    t_on, t_off = interleaved(
        lambda: step(policies[True], optimizers[True], batch),
        lambda: step(policies[False], optimizers[False], batch),
        rounds,
        reps,
    )
    n = len(batch["instruction"])
    return (
        f"| {family} | {finetune} | {memory[False]:.2f} | {memory[True]:.2f} | {memory[True] / memory[False]:.2f}x | "
        f"{n / t_off:.0f} | {n / t_on:.0f} | {t_off / t_on:.2f}x |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec, stats = setup(64)
    batch = make_batch(spec, args.batch, CHUNK)
    print(header("VLM action expert: gradient checkpointing against none"))
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, medians of {args.rounds} x {args.reps}"
    )
    rows = [
        "| family | finetune | peak off (MiB) | peak on (MiB) | on/off | off (samples/s) | on (samples/s) | on/off |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for family in ("paligemma", "idefics3"):
            base = write_tiny_base(Path(tmp) / family, family, INSTRUCTIONS)
            for finetune in ("full", "lora"):
                rows.append(row(base, family, finetune, spec, stats, batch, args.rounds, args.reps))
                print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()

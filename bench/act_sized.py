"""Training throughput at LeRobot ACT's size, against the figure LeRobot 0.4.4 reaches on this machine.

LeRobot is not a dependency (it pins an older torch), so its side is the figure issue #11 measured
with it on this machine: an ACT policy of ~50M parameters (ResNet-18 backbone, transformer
encoder-decoder), one 96x96 camera, 4-D state, batch 8, 2 threads: 7.1 samples/s.

polyact's side is its real training loop (`polyact.train.train`: a dataset on disk, one DataLoader
worker, EMA, logging, checkpoints) on a policy of the same size and inputs: a ResNet-style conv
encoder of ACT's backbone widths (64-128-256-512, ~8M parameters), a 10-layer 512-wide trunk, and an
L1 chunk head predicting ACT's chunk of 100 actions. It runs in float32, under bf16 autocast
(`precision=bf16`; on a CPU with AMX the matrix products run in bf16 hardware) and bf16 with
`torch.compile` (`compile=true`).

    python -m polyact.bench.act_sized [--steps 120] [--rounds 2] [--variants fp32,bf16,...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from polyact.bench.common import header
from polyact.data import DatasetWriter
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.policies.config import HeadConfig, PolicyConfig, TextConfig, VisionConfig
from polyact.train import TrainConfig, train
from polyact.train.config import OptimConfig

LEROBOT_ACT_SAMPLES_PER_S = 7.1  # LeRobot 0.4.4, ACT (~50M), 96x96, 4-D state, batch 8, 2 threads (issue #11)
IMAGE = 96
BATCH = 8


def act_sized_policy() -> PolicyConfig:
    """~50M parameters, as ACT: ResNet-18's stage widths, a 512-wide transformer, a chunk of 100."""
    return PolicyConfig(
        size="base",
        width=512,
        depth=10,
        attention_heads=8,
        chunk=100,
        history=1,
        vision=VisionConfig(channels=[64, 128, 256, 512], stem=4, grid=3),
        text=TextConfig(pool=True),
        head=HeadConfig(name="l1", readouts=1),
    )


def make_dataset(path: Path, episodes: int) -> None:
    spec = synthetic_env_spec(cameras=("front",), height=IMAGE, width=IMAGE, state_dim=4, goal_dim=0)
    with DatasetWriter.for_spec(path, spec) as writer:
        for seed in range(episodes):
            writer.add_episode(synthetic_episode(spec, 120, seed=seed, rendered=True))


VARIANTS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "bf16 + torch.compile": ("bf16", True)}


def samples_per_s(dataset: Path, out: Path, steps: int, variant: str) -> tuple[float, int]:
    """The loop's median samples/s over its log intervals after the first (which holds the warm-up and,
    compiled, the compilation), and the policy's parameter count."""
    precision, compile_model = VARIANTS[variant]
    cfg = TrainConfig(
        dataset=str(dataset),
        out=str(out),
        policy=act_sized_policy(),
        steps=steps,
        batch_size=BATCH,
        optim=OptimConfig(lr=1e-4, warmup_steps=10),
        num_workers=1,
        checkpoint_every=10 * steps,  # ACT's training checkpoints rarely; the final one is still written
        log_every=max(1, steps // 6),
        precision=precision,
        compile=compile_model,
        progress=False,
    )
    policy_dir = train(cfg)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    parameters = sum(t.numel() for t in _load_state(policy_dir).values())
    return statistics.median(r["samples_per_s"] for r in records[1:]), parameters


def _load_state(policy_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(policy_dir / "model.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(header("training throughput at LeRobot ACT's size"))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, "
        f"one {IMAGE}x{IMAGE} camera, {args.steps} steps"
    )
    results: dict[str, list[float]] = {name: [] for name in args.variants.split(",")}
    unknown = set(results) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; valid: {list(VARIANTS)}")
    parameters = 0
    with tempfile.TemporaryDirectory() as tmp:
        make_dataset(Path(tmp) / "data", args.episodes)
        for r in range(args.rounds):
            for i, (variant, runs) in enumerate(results.items()):
                rate, parameters = samples_per_s(Path(tmp) / "data", Path(tmp) / f"run{r}_{i}", args.steps, variant)
                runs.append(rate)
                print(f"round {r}: {variant} {rate:.1f} samples/s", flush=True)
    print(f"\npolyact policy: {parameters / 1e6:.1f}M parameters\n")
    print("| | samples/s | vs LeRobot ACT |\n|---|---|---|")
    print(f"| LeRobot 0.4.4 ACT (measured once, issue #11) | {LEROBOT_ACT_SAMPLES_PER_S} | 1.0x |")
    for variant, runs in results.items():
        rate = statistics.median(runs)
        print(f"| polyact, train/loop.py, {variant} | {rate:.1f} | {rate / LEROBOT_ACT_SAMPLES_PER_S:.1f}x |")


if __name__ == "__main__":
    main()

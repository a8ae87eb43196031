"""The VLM policy (policy.backbone=vlm) at the real shapes of PaliGemma-3B on a GPU: what fine-tuning a ~3B
VLM costs in samples/s and memory, and what a chunk costs at inference, before anyone downloads one.

The model is random-initialised from PaliGemma-3B's config (google/paligemma-3b-pt-224's config.json, as
transformers' PaliGemmaConfig reads it): a SigLIP-So400m vision tower (27 layers, width 1152, MLP 4304, 16
heads, 224 px, patch 14: 256 image tokens) projected to 2048, and Gemma-2B (18 layers, width 2048, 8 heads,
1 KV head, head dim 256, MLP 16384, vocabulary 257216); 2.92B parameters (keras-hub's pali_gemma_3b_224
preset lists 2,923,335,408). The base directory written to a temporary directory holds that config, a
WordLevel tokenizer over the prompts' words (policies/vlm/tiny.py's; the image token is its id, not 257152,
which changes no cost) and preprocessor_config.json; the policy builds the architecture from it with
`load_pretrained_weights=False`, as a saved policy does, the weights initialised on the device: writing
12 GB of random fp32 weights and reading them back for every row would spend minutes of lent GPU time and
measure nothing the rows report. Nothing is downloaded.

One run, every row on the same batch: bf16 autocast over fp32 weights (`polyact train precision=bf16`),
AdamW (fused on CUDA).
- training: samples/s (median step after warm-up) and peak memory (torch.cuda.max_memory_allocated over
  the build and the steps: weights, gradients, AdamW's state and activations) for finetune full, lora and
  frozen_vision, each without and with vlm.gradient_checkpointing, and without and with torch.compile of
  the policy's forward (`policy.compile()`; a failure prints the error's first line in the row);
- chunk latency (batch 1, full weights): OpenVLA's 256-bin tokens (chunk x action_dim greedy tokens with
  the KV cache) and pi0's flow expert (policies/vlm/expert.py, 10 Euler steps over one prefix cache).
One 224x224 camera (the tower's input, no resize), 4-D actions, chunk 8.

`--shape tiny` runs the same code on policies/vlm/tiny.py's 2-layer width-32 model (a smoke run on a CPU:
`--device cpu --shape tiny`); the 3B shapes are refused on a CPU.

    python -m polyact.bench.vlm_gpu --device cuda [--batch 8] [--steps 5] [--train-heads openvla] [--no-compile]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from polyact.bench.common import header
from polyact.bench.policies import INSTRUCTIONS, make_batch, setup
from polyact.policies import HeadConfig, PolicyConfig
from polyact.policies.language import build_vocab
from polyact.policies.pretrained import PREPROCESSOR_FILE, _transformers
from polyact.policies.vlm.policy import VLMPolicy
from polyact.policies.vlm.tiny import IMAGE, tiny_model, tiny_tokenizer

HEADS = {
    "openvla": HeadConfig(name="uniform_bins", decoding="autoregressive"),
    "pi0 flow": HeadConfig(name="flow", sample_steps=10),
}
FINETUNES = ("full", "lora", "frozen_vision")
CHUNK = 8
GIB = 2**30


def paligemma_3b_config() -> Any:
    """google/paligemma-3b-pt-224's shapes (see the module docstring), the image token on the tokenizer's id."""
    return _transformers().PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 27,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "projection_dim": 2048,
            "projector_hidden_act": "gelu_fast",
            "vision_use_head": False,
        },
        text_config={
            "model_type": "gemma",
            "hidden_size": 2048,
            "intermediate_size": 16384,
            "num_hidden_layers": 18,
            "num_attention_heads": 8,
            "num_key_value_heads": 1,
            "head_dim": 256,
            "vocab_size": 257216,
        },
        image_token_index=IMAGE,
        vocab_size=257216,
        projection_dim=2048,
        hidden_size=2048,
    )


def write_base(path: Path, shape: str) -> Path:
    """A base model directory without weights: config, tokenizer, preprocessor_config.json."""
    config = paligemma_3b_config() if shape == "3b" else tiny_model("paligemma").config
    config.save_pretrained(path)
    tiny_tokenizer(INSTRUCTIONS).save_pretrained(path)
    (path / PREPROCESSOR_FILE).write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    return path


def build(base: Path, head: str, finetune: str, checkpointing: bool, spec, stats, device: str) -> VLMPolicy:
    """The policy, random weights initialised on `device`; the environment fields as build_policy fills them."""
    torch.manual_seed(0)
    cam = spec.cameras[0]
    vlm = {"path": str(base), "files": str(base), "family": "paligemma", "finetune": finetune}
    cfg = PolicyConfig(
        backbone="vlm",
        vlm={**vlm, "gradient_checkpointing": checkpointing},
        head=HEADS[head],
        chunk=CHUNK,
        replan_every=4,
        cameras=[cam.name],
        image_height=cam.height,
        image_width=cam.width,
        action_dim=spec.action.dim,
        state_dim=len(spec.state_names),
        goal_dim=len(spec.goal_names),
    )
    cfg.text.vocab = build_vocab(INSTRUCTIONS)
    with torch.device(device):
        policy = VLMPolicy(cfg, load_pretrained_weights=False, env_spec=spec)
    policy.to(device).load_statistics(stats)
    return policy


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], None], warmup: int, reps: int, device: str) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def release(device: str) -> None:
    """Free the last row's model, its compiled graphs and cached blocks, and restart the peak count."""
    torch._dynamo.reset()
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def first_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    return text[:150].replace("|", "/")


def train_row(base: Path, head: str, finetune: str, ckpt: bool, compiled: bool, args, spec, stats) -> str:
    device, label = args.device, f"| {head} | {finetune} | {'on' if ckpt else 'off'} | {'on' if compiled else 'off'} |"
    batch = make_batch(spec, args.batch, CHUNK)
    release(device)
    try:
        policy = build(base, head, finetune, ckpt, spec, stats, device).train()
        params = [p for p in policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5, fused=device.startswith("cuda"))
        if compiled:
            policy.compile()

        def step() -> None:
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
                loss, _ = policy(batch)  # forward is compute_loss; called so that compile() applies
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds = median_seconds(step, args.warmup, args.steps, device)
    except Exception as error:  # a failed row (compile, out of memory) is reported, the table goes on
        return f"{label} - | - | - | failed: {first_line(error)} |"
    trained = sum(p.numel() for p in params) / 1e6
    peak = f"{torch.cuda.max_memory_allocated() / GIB:.1f}" if device.startswith("cuda") else "n/a (CPU)"
    return f"{label} {trained:.3g}M | {args.batch / seconds:.1f} | {peak} | |"


def latency_row(base: Path, head: str, args, spec, stats) -> str:
    device = args.device
    obs = make_batch(spec, 1, CHUNK, seed=1)
    release(device)
    try:
        policy = build(base, head, "full", False, spec, stats, device).eval()

        def chunk() -> None:
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
                policy.predict_chunk(obs)

        seconds = median_seconds(chunk, args.warmup, args.steps, device)
    except Exception as error:
        return f"| {head} | - | - | failed: {first_line(error)} |"
    if policy.expert is None:
        work = f"{CHUNK * policy.head.tokens_per_step} tokens"
    else:
        work = f"{policy.config.head.sample_steps} expert steps"
    return f"| {head} | {work} | {seconds * 1e3:.0f} | |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (the 3B shapes) or cpu (--shape tiny only)")
    parser.add_argument("--shape", choices=("3b", "tiny"), default="3b")
    parser.add_argument("--batch", type=int, default=8, help="training batch size")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (chunks) a row, after the warm-up")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation happens there)")
    parser.add_argument("--train-heads", nargs="+", choices=tuple(HEADS), default=["openvla"])
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.shape == "3b" and not cuda:
        parser.error(
            "the 3B shapes need --device cuda (3B fp32 weights with AdamW's state take ~48 GB and minutes a step "
            "on a CPU); on a CPU run --shape tiny"
        )
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here; on a CPU run --device cpu --shape tiny")
    name = torch.cuda.get_device_name(args.device) if cuda else "CPU"
    spec, stats = setup(224 if args.shape == "3b" else 64)
    print(header(f"VLM policy at {'PaliGemma-3B' if args.shape == '3b' else 'tiny'} shapes on {name}"))
    print(f"device: {name}; torch {torch.__version__}; bf16 autocast; batch {args.batch}; median of {args.steps}")
    compiles = (False,) if args.no_compile else (False, True)
    train = [
        "| head | finetune | checkpointing | compile | trained params | samples/s | peak memory (GiB) | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    latency = ["| head | per chunk | ms/chunk (batch 1) | note |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        base = write_base(Path(tmp), args.shape)
        for head in args.train_heads:
            for finetune in FINETUNES:
                for ckpt in (False, True):
                    for compiled in compiles:
                        train.append(train_row(base, head, finetune, ckpt, compiled, args, spec, stats))
                        print(train[-1], flush=True)
        for head in HEADS:
            latency.append(latency_row(base, head, args, spec, stats))
            print(latency[-1], flush=True)
    print(f"\nTraining ({name}):\n" + "\n".join(train))
    print(f"\nChunk latency ({name}):\n" + "\n".join(latency))


if __name__ == "__main__":
    main()

"""Write the golden fixtures of tests/policies/test_golden.py: one tiny seeded policy per action head,
a fixed batch and fixed noise, and what each policy computes from them.

    python tests/policies/golden/make_golden.py

Rerun it only for a change of the numbers that is meant (say which in the commit); the test then
guards the new ones. Weights are stored, not rebuilt from a seed, so a change in torch's initialisation
RNG cannot move a fixture: only a change to the normaliser, the encoders, the trunk or a head can.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from polyact.data.synthetic import synthetic_env_spec
from polyact.policies import HeadConfig, PolicyConfig, VLAPolicy, build_policy

HERE = Path(__file__).resolve().parent
HEADS = ("uniform_bins", "adaptive_grid", "diffusion", "flow", "l1")
INSTRUCTIONS = ["pick up the red block", "open the drawer", "push the button"]
BATCH, HISTORY, CHUNK = 3, 2, 4
LOSS_SEED = 0  # the generator of compute_loss: the noise and timesteps of diffusion and flow
EXPECTED = "expected.safetensors"


def outputs(policy: VLAPolicy, batch: dict[str, Any], noise: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the fixtures hold, in eval mode (no random crop): the trunk's readout tokens (B, R, D),
    so a failure says whether the change is before or in the head, the raw action chunk (B, H, A)
    from `noise`, and the loss under a generator seeded with LOSS_SEED."""
    with torch.no_grad():
        readout = policy.encode(batch)
        loss, _ = policy.compute_loss(batch, generator=torch.Generator().manual_seed(LOSS_SEED))
    chunk = torch.from_numpy(policy.predict_chunk(batch, noise=noise))
    return {"readout": readout, "chunk": chunk, "loss": loss}


def load_inputs() -> tuple[dict[str, Any], torch.Tensor]:
    """The stored batch (loader layout) and the sampling noise (B, H, A)."""
    tensors = load_file(str(HERE / "batch.safetensors"))
    noise = tensors.pop("noise")
    return tensors | json.loads((HERE / "batch.json").read_text()), noise


def _stats(dims: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Statistics with a distinct value per dimension, so a normaliser that mixes dimensions up shows."""
    out = {}
    for name, dim in dims.items():
        scale = 60.0 if name.startswith("rgb/") else 1.0
        centre = (120.0 if name.startswith("rgb/") else 0.0) + 0.1 * scale * np.arange(dim)
        spread = scale * (0.5 + 0.1 * np.arange(dim))
        out[name] = {"mean": centre, "std": spread, "q01": centre - 1.8 * spread, "q99": centre + 1.8 * spread}
    return out


def _inputs() -> tuple[dict[str, Any], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch: dict[str, Any] = {
        "obs/rgb/corner": torch.randint(0, 256, (BATCH, HISTORY, 16, 16, 3), generator=g, dtype=torch.uint8),
        "obs/state": torch.randn(BATCH, HISTORY, 4, generator=g),
        "obs/goal": torch.randn(BATCH, HISTORY, 3, generator=g),
        "obs_is_pad": torch.tensor([[True, False], [False, False], [False, False]]),
        "action": (torch.rand(BATCH, CHUNK, 4, generator=g) * 2 - 1) * 0.8,
        "action_is_pad": torch.tensor([[False] * 4, [False] * 4, [False, False, True, True]]),
    }
    return batch, torch.randn(BATCH, CHUNK, 4, generator=g)


def _policy(head: str) -> VLAPolicy:
    spec = synthetic_env_spec(cameras=("corner",), state_dim=4, goal_dim=3, action_dim=4)
    stats = _stats({"action": 4, "state": 4, "goal": 3, "rgb/corner": 3})
    head_cfg = HeadConfig(
        name=head, num_bins=32, grid_translation=[4, 4, 2], grid_rotation=[2, 2, 2], sample_steps=4, denoiser_width=32
    )
    # tiny, narrower still (width 16): the five weight files stay at a few hundred KiB in all
    cfg = PolicyConfig(size="tiny", head=head_cfg, history=HISTORY, chunk=CHUNK, replan_every=2, width=16)
    samples = np.random.default_rng(0).uniform(-1, 1, (500, 4)).astype(np.float32)
    torch.manual_seed(0)
    return build_policy(cfg, spec, stats, INSTRUCTIONS, action_samples=samples).eval()


def _check_not_on_an_edge(policy: VLAPolicy, batch: dict[str, Any], noise: torch.Tensor, chunk: torch.Tensor) -> None:
    """Token heads decode with argmax: refuse a fixture whose chunk flips under a 1e-4 nudge of the readout,
    which another CPU's rounding could then flip too."""
    with torch.no_grad():
        readout = policy.encode(batch)
        nudged = readout * (1 + 1e-4 * torch.randn(readout.shape, generator=torch.Generator().manual_seed(1)))
        again = policy.normalizer.unnormalize("action", policy.head.sample(nudged, noise=noise))
    if not torch.allclose(again, chunk, rtol=1e-3, atol=1e-3):
        raise SystemExit(f"{policy.config.head.name}: the chunk is on an argmax edge; change a seed")


def main() -> None:
    torch.set_num_threads(1)  # as the test runs (tests/policies/conftest.py)
    batch, noise = _inputs()
    save_file({**batch, "noise": noise}, str(HERE / "batch.safetensors"))
    (HERE / "batch.json").write_text(json.dumps({"instruction": INSTRUCTIONS}, indent=2) + "\n")
    batch, noise = load_inputs()
    for head in HEADS:
        policy = _policy(head)
        policy.save_pretrained(HERE / head)
        policy = VLAPolicy.from_pretrained(HERE / head)  # the test starts from the saved directory too
        expected = outputs(policy, batch, noise)
        _check_not_on_an_edge(policy, batch, noise, expected["chunk"])
        save_file(expected, str(HERE / head / EXPECTED))
        size = sum(p.stat().st_size for p in (HERE / head).iterdir())
        print(f"{head}: loss {float(expected['loss']):.6f}, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()

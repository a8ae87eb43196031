"""The VLM policy under bf16 autocast (`polyact train precision=bf16`, train/loop.py) and with gradient
checkpointing (the token heads and pi0's action expert), on tiny random PaliGemma and Idefics3 models
(policies/vlm/tiny.py), on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from polyact.policies import HeadConfig, PolicyConfig, build_policy
from polyact.policies.vlm.policy import VLMPolicy

from .conftest import INSTRUCTIONS, make_batch, make_spec, make_stats, train_steps

pytest.importorskip("transformers")
pytest.importorskip("peft")

HEADS = {
    "uniform_bins": HeadConfig(name="uniform_bins", decoding="autoregressive"),
    "adaptive_grid": HeadConfig(name="adaptive_grid", grid_translation=[2, 3, 2]),
    "flow": HeadConfig(name="flow", sample_steps=4),
}


def _policy(family: str, path: Path, head: str, finetune: str, checkpointing: bool = False) -> VLMPolicy:
    spec = make_spec(cameras=("front",), size=24)
    cfg = PolicyConfig(
        size="tiny",
        backbone="vlm",
        vlm={
            "path": str(path),
            "family": family,
            "finetune": finetune,
            "lora_rank": 4,
            "lora_alpha": 8,
            "gradient_checkpointing": checkpointing,
        },
        head=HEADS[head],
        chunk=2,
        replan_every=1,
    )
    torch.manual_seed(0)
    samples = np.random.default_rng(0).uniform(-0.8, 0.8, (200, 4)).astype(np.float32)
    return build_policy(cfg, spec, make_stats(spec), INSTRUCTIONS, samples).train()


def _batch() -> dict:
    return make_batch(make_spec(cameras=("front",), size=24), batch=3, history=1, chunk=2)


def _step(policy: VLMPolicy, batch: dict, bf16: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss and the gradients of one backward pass, as the training loop runs it (the flow expert's
    noise and times drawn from the same seed each call)."""
    policy.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss, _ = policy.compute_loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    grads = {k: p.grad.clone() for k, p in policy.named_parameters() if p.grad is not None}
    return loss.detach(), grads  # without the parameters the loss does not read (the expert: the LM head)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12))


@pytest.mark.parametrize("head", ["uniform_bins", "adaptive_grid"])
@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_a_bf16_step_matches_fp32_within_tolerance(base, head, finetune):
    family, path = base
    policy = _policy(family, path, head, finetune)
    batch = _batch()
    loss32, grads32 = _step(policy, batch, bf16=False)
    loss16, grads16 = _step(policy, batch, bf16=True)
    assert loss16.dtype == torch.float32 and torch.isfinite(loss16)
    assert loss16.item() == pytest.approx(loss32.item(), rel=1e-2)
    # bf16 keeps 8 bits of mantissa: the whole gradient agrees to a few percent
    assert (
        _relative(
            torch.cat([g.flatten() for g in grads16.values()]), torch.cat([g.flatten() for g in grads32.values()])
        )
        < 0.05
    )
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in policy.parameters())


@pytest.mark.parametrize("head", ["uniform_bins", "adaptive_grid"])
def test_bf16_inference_gives_fp32_logits_within_tolerance_and_a_float32_chunk(base, head):
    family, path = base
    policy = _policy(family, path, head, "lora").eval()
    batch = _batch()
    with torch.no_grad():
        targets = policy.head.encode(policy.normalizer.normalize("action", batch["action"].float())).flatten(1)
        instructions, images = policy._observation(batch)
        logits32 = policy.vlm.action_logits(instructions, images, targets)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits16 = policy.vlm.action_logits(instructions, images, targets)
            chunk = policy.predict_chunk(batch)
    assert logits16.dtype == torch.bfloat16
    assert _relative(logits16, logits32) < 0.02
    assert chunk.dtype == np.float32 and chunk.shape == (3, 2, 4) and np.isfinite(chunk).all()


@pytest.mark.parametrize("head", ["uniform_bins", "adaptive_grid"])
@pytest.mark.parametrize("bf16", [False, True])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(base, head, bf16):
    """Full fine-tuning (every layer's activations recomputed) and the grid tokens, in both precisions;
    tests/policies/test_vlm.py checks LoRA with OpenVLA's tokens in fp32."""
    family, path = base
    batch = _batch()
    off = _step(_policy(family, path, head, "full", checkpointing=False), batch, bf16)
    on = _step(_policy(family, path, head, "full", checkpointing=True), batch, bf16)
    torch.testing.assert_close(on[0], off[0])
    assert on[1].keys() == off[1].keys()
    for key, grad in off[1].items():
        torch.testing.assert_close(on[1][key], grad, msg=key)


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_gradient_checkpointing_keeps_the_experts_loss_gradients_and_chunk(base, finetune):
    """pi0's action expert reads every decoder layer's keys and values (policies/vlm/prefix_cache.py):
    with the layers recomputed in the backward pass, the loss and every trainable parameter's gradient
    (the expert's and the VLM's, through the keys and values) are those without checkpointing."""
    family, path = base
    batch = _batch()
    policies = {on: _policy(family, path, "flow", finetune, checkpointing=on) for on in (False, True)}
    calls = {}
    for on, policy in policies.items():  # inside the checkpointed layer: runs again when recomputed
        base_model = policy.vlm.model.get_base_model() if policy.vlm.lora else policy.vlm.model
        attention = base_model.get_decoder().layers[0].self_attn
        calls[on] = []
        attention.register_forward_hook(lambda *args, on=on: calls[on].append(1))
    off, on = _step(policies[False], batch, bf16=False), _step(policies[True], batch, bf16=False)
    assert (len(calls[False]), len(calls[True])) == (1, 2)
    torch.testing.assert_close(on[0], off[0])
    assert on[1].keys() == off[1].keys()
    assert any(key.startswith("expert.") for key in off[1])
    keys = [k for k in off[1] if "k_proj" in k and "lora_A" not in k]  # LoRA's A: no gradient while B = 0
    assert keys and all(off[1][k].abs().sum() > 0 for k in keys), keys  # the gradient reaches the VLM's keys
    for key, grad in off[1].items():
        torch.testing.assert_close(on[1][key], grad, msg=key)
    generator = {on: torch.Generator().manual_seed(1) for on in policies}
    chunks = {on: p.eval().predict_chunk(batch, generator=generator[on]) for on, p in policies.items()}
    np.testing.assert_array_equal(chunks[True], chunks[False])
    losses = train_steps(policies[True], batch, 2, lambda p, b: p.compute_loss(b, torch.Generator().manual_seed(0))[0])
    with torch.no_grad():
        assert policies[True].compute_loss(batch, torch.Generator().manual_seed(0))[0].item() < losses[0]

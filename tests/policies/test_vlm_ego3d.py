"""SpatialVLA's Ego3D encoding on the VLM's vision tower (policy.backbone=vlm vision.depth=true,
policies/vlm/ego3d.py), on tiny random-initialised PaliGemma and Idefics3 models written here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from polyact.errors import ContractError
from polyact.policies import HeadConfig, PolicyConfig, VLAPolicy, build_policy
from polyact.policies.vlm.policy import VLMPolicy

from .conftest import INSTRUCTIONS, make_batch, make_spec, make_stats

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("peft")

HEADS = {"openvla": HeadConfig(name="uniform_bins", decoding="autoregressive"), "flow": HeadConfig(name="flow")}


def _policy(family: str, path: Path, head: str = "flow", finetune: str = "frozen_vision") -> VLMPolicy:
    spec = make_spec(cameras=("front", "wrist"), size=24)
    cfg = PolicyConfig(
        size="tiny",
        backbone="vlm",
        vlm={"path": str(path), "family": family, "finetune": finetune, "lora_rank": 4, "lora_alpha": 8},
        head=HEADS[head],
        vision={"depth": True},
        history=1,
        chunk=2,
        replan_every=1,
    )
    torch.manual_seed(0)
    return build_policy(cfg, spec, make_stats(spec), INSTRUCTIONS)


def _batch(policy: VLMPolicy) -> dict[str, Any]:
    return make_batch(make_spec(cameras=("front", "wrist"), size=24), batch=3, history=1, chunk=2)


def _patch_features(policy: VLMPolicy, batch: dict[str, Any]) -> torch.Tensor:
    """What the projector reads: the vision tower's patch features after the Ego3D hook, (B * C, P, D)."""
    captured = []
    model = policy.vlm.model.get_base_model() if policy.vlm.lora else policy.vlm.model
    tower = policy.vlm.family.vision_tower(model)
    handle = tower.register_forward_hook(lambda m, a, out: captured.append(out.last_hidden_state.detach()))
    try:
        with torch.no_grad(), policy._depth(batch):
            policy.vlm.prefix(*policy._observation(batch))
    finally:
        handle.remove()
    return captured[0]


def test_depth_changes_the_patch_features_by_the_ego3d_encoding(base):
    family, path = base
    policy = _policy(family, path)
    batch = _batch(policy)
    with torch.no_grad():  # a non-zero output layer, so the encoding is not the small-init near-zero
        torch.nn.init.normal_(policy.ego3d.encoding.mlp[-1].weight)
    features = _patch_features(policy, batch)
    torch.testing.assert_close(_patch_features(policy, batch), features)
    farther = dict(batch, **{"obs/depth/wrist": batch["obs/depth/wrist"] * 2})
    moved = _patch_features(policy, farther)
    cams = moved.shape[0] // 3
    per_image = (moved - features).abs().flatten(1).amax(1).view(3, cams)
    assert (per_image[:, 1] > 1e-3).all() and (per_image[:, 0] == 0).all()  # only the wrist camera's images
    depth = torch.stack([farther["obs/depth/front"][:, -1], farther["obs/depth/wrist"][:, -1]], 1).flatten(0, 1)
    k = torch.stack([batch["obs/intrinsics/front"][:, -1], batch["obs/intrinsics/wrist"][:, -1]], 1).flatten(0, 1)
    with torch.no_grad():
        old_depth = torch.stack([batch["obs/depth/front"][:, -1], batch["obs/depth/wrist"][:, -1]], 1).flatten(0, 1)
        expected = policy.ego3d.encoding(depth, k, policy.ego3d.grid) - policy.ego3d.encoding(
            old_depth, k, policy.ego3d.grid
        )
    torch.testing.assert_close(moved - features, expected, atol=1e-5, rtol=1e-4)  # added, nothing else


@pytest.mark.parametrize("head", ["openvla", "flow"])
def test_ego3d_trains_with_the_vlm_and_is_saved_with_the_policy(base, tmp_path, head):
    family, path = base
    policy = _policy(family, path, head)
    batch = _batch(policy)
    params = list(policy.ego3d.parameters())
    assert params and all(p.requires_grad for p in params)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    policy.train()
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss, _ = policy.compute_loss(batch, torch.Generator().manual_seed(0))
        loss.backward()
        assert all(p.grad is not None for p in params) and params[0].grad.abs().sum() > 0
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    policy.eval()
    expected = policy.predict_chunk(batch, generator=torch.Generator().manual_seed(1))
    loaded = VLAPolicy.from_pretrained(policy.save_pretrained(tmp_path / "policy"))
    torch.testing.assert_close(dict(loaded.ego3d.state_dict()), dict(policy.ego3d.state_dict()))
    np.testing.assert_array_equal(loaded.predict_chunk(batch, generator=torch.Generator().manual_seed(1)), expected)


def test_a_batch_without_depth_is_refused_by_name(base):
    family, path = base
    policy = _policy(family, path)
    batch = {k: v for k, v in _batch(policy).items() if k != "obs/depth/front"}
    with pytest.raises(ContractError, match="obs/depth/front"):
        policy.compute_loss(batch)

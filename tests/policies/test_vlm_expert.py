"""pi0's action expert on the VLM policy (policy.backbone=vlm head.name=flow, policies/vlm/expert.py), on
tiny random-initialised PaliGemma and Idefics3 models written here as a downloaded model is laid out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from polyact.errors import ConfigError
from polyact.policies import HeadConfig, PolicyConfig, VLAPolicy, build_policy
from polyact.policies.vlm.policy import VLMPolicy

from .conftest import INSTRUCTIONS, make_batch, make_spec, make_stats, train_steps

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("peft")


def _config(family: str, path: Path, finetune: str = "lora", head: str = "flow", **vlm: Any) -> PolicyConfig:
    return PolicyConfig(
        size="tiny",
        backbone="vlm",
        vlm={"path": str(path), "family": family, "finetune": finetune, "lora_rank": 4, "lora_alpha": 8, **vlm},
        head=HeadConfig(name=head, sample_steps=4),
        history=1,
        chunk=3,
        replan_every=1,
    )


def _policy(family: str, path: Path, finetune: str = "lora", head: str = "flow", **vlm: Any) -> VLMPolicy:
    spec = make_spec(cameras=("front", "wrist"), size=24)
    torch.manual_seed(0)
    return build_policy(_config(family, path, finetune, head, **vlm), spec, make_stats(spec), INSTRUCTIONS)


def _batch(policy: VLMPolicy, seed: int = 0) -> dict[str, Any]:
    spec = make_spec(cameras=tuple(policy.config.cameras), size=24)
    return make_batch(spec, batch=3, history=1, chunk=policy.config.chunk, seed=seed)


def _loss(policy: VLMPolicy, batch: dict[str, Any]) -> torch.Tensor:
    """The flow loss with the same noise and times each call."""
    return policy.compute_loss(batch, torch.Generator().manual_seed(0))[0]


def _chunk(policy: VLMPolicy, batch: dict[str, Any], seed: int = 1) -> np.ndarray:
    policy.eval()
    return policy.predict_chunk(batch, generator=torch.Generator().manual_seed(seed))


def test_the_expert_predicts_chunks_of_the_policys_shape(base):
    family, path = base
    policy = _policy(family, path)
    batch = _batch(policy)
    chunk = _chunk(policy, batch)
    assert chunk.shape == (3, 3, 4) and np.isfinite(chunk).all()
    assert policy.head is policy.expert and len(policy.expert.layers) == 2  # one per decoder layer (pi0's)
    loss, metrics = policy.compute_loss(batch)
    assert loss.shape == () and torch.isfinite(loss) and set(metrics) == {"loss"}


@pytest.mark.parametrize("finetune", ["lora", "frozen_vision", "full"])
def test_two_training_steps_reduce_the_loss_and_the_expert_always_trains(base, finetune):
    family, path = base
    policy = _policy(family, path, finetune)
    assert all(p.requires_grad for p in policy.expert.parameters())
    tower = policy.vlm.family.vision_tower(policy.vlm.model.get_base_model() if policy.vlm.lora else policy.vlm.model)
    base_weights = [p for name, p in tower.named_parameters() if "lora_" not in name]
    assert any(p.requires_grad for p in base_weights) == (finetune == "full")
    batch = _batch(policy)
    before = train_steps(policy, batch, 2, _loss)
    with torch.no_grad():
        after = _loss(policy, batch).item()
    assert after < before[0], (before, after)


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_save_and_load_give_identical_sampled_chunks(base, tmp_path, finetune):
    family, path = base
    policy = _policy(family, path, finetune)
    batch = _batch(policy)
    train_steps(policy, batch, 1, _loss)  # LoRA's B matrices start at zero: train so the adapters matter
    expected = _chunk(policy, batch)
    directory = policy.save_pretrained(tmp_path / "policy")
    loaded = VLAPolicy.from_pretrained(directory)
    assert isinstance(loaded, VLMPolicy) and loaded.expert is not None
    np.testing.assert_array_equal(_chunk(loaded, batch), expected)
    assert not np.array_equal(_chunk(loaded, batch, seed=2), expected)  # the seed does matter


def test_the_prefix_runs_once_per_chunk_whatever_the_integration_steps(base):
    family, path = base
    policy = _policy(family, path)
    calls = []
    decoder = policy.vlm.model.get_base_model().get_decoder()
    handle = decoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        batch = _batch(policy)
        _chunk(policy, batch)
        assert policy.config.head.sample_steps == 4 and len(calls) == 1
    finally:
        handle.remove()


def test_the_chunk_depends_on_the_instruction_and_the_image(base):
    family, path = base
    policy = _policy(family, path)
    batch = _batch(policy)
    train_steps(policy, batch, 1, _loss)  # so the LoRA-adapted VLM is not the base alone
    expected = _chunk(policy, batch)
    reworded = dict(batch, instruction=[INSTRUCTIONS[(i + 1) % len(INSTRUCTIONS)] for i in range(3)])
    assert batch["instruction"] != reworded["instruction"]
    changed = np.abs(_chunk(policy, reworded) - expected).max(axis=(1, 2))
    assert (changed > 1e-6).all(), changed
    dark = dict(batch, **{"obs/rgb/front": torch.zeros_like(batch["obs/rgb/front"])})
    changed = np.abs(_chunk(policy, dark) - expected).max(axis=(1, 2))
    assert (changed > 1e-6).all(), changed


def test_the_expert_is_half_the_language_models_width_unless_set(base):
    family, path = base
    assert _config(family, path).vlm.expert_width == 0  # half the language model's width by default
    assert _policy(family, path, expert_width=8).expert.width == 8


@pytest.mark.parametrize("head", ["diffusion", "l1"])
def test_diffusion_and_l1_train_reload_and_read_the_vlm_through_the_expert(base, tmp_path, head):
    """The same expert under heads/diffusion.py's DDPM/DDIM rule and OpenVLA-OFT's L1 regression."""
    family, path = base
    policy = _policy(family, path, head=head)
    assert policy.head is policy.expert and policy.vlm.tokens is None
    batch = _batch(policy)
    before = train_steps(policy, batch, 2, _loss)
    with torch.no_grad():
        assert _loss(policy, batch).item() < before[0]
    expected = _chunk(policy, batch)
    assert expected.shape == (3, 3, 4) and np.isfinite(expected).all()
    loaded = VLAPolicy.from_pretrained(policy.save_pretrained(tmp_path / "policy"))
    np.testing.assert_array_equal(_chunk(loaded, batch), expected)
    deterministic = np.array_equal(_chunk(loaded, batch, seed=2), expected)
    assert deterministic == (head == "l1")  # L1 regresses the chunk; diffusion samples it
    reworded = dict(batch, instruction=[INSTRUCTIONS[(i + 1) % len(INSTRUCTIONS)] for i in range(3)])
    assert (np.abs(_chunk(loaded, reworded) - expected).max(axis=(1, 2)) > 1e-6).all()


def test_merged_lora_gives_the_unmerged_chunk(base):
    """Merging the adapters (inference) keeps the expert reading the same keys and values."""
    family, path = base
    policy = _policy(family, path)
    batch = _batch(policy)
    train_steps(policy, batch, 1, _loss)
    expected = _chunk(policy, batch)
    policy.merge_lora()
    np.testing.assert_allclose(_chunk(policy, batch), expected, atol=1e-5)


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_smolvlas_first_half_never_runs_the_upper_layers_and_trains(base, tmp_path, finetune):
    """vlm.expert_layers=first_half, SmolVLA's layer skipping (arXiv 2506.01844): the VLM's upper layers
    are dropped, the expert reads the lower layers' keys and values exactly as pi0's every-layer expert
    reads them, and it trains and reloads to the same chunk."""
    family, path = base
    every, half = _policy(family, path, finetune), _policy(family, path, finetune, expert_layers="first_half")
    decoders = [(p.vlm.model.get_base_model() if p.vlm.lora else p.vlm.model).get_decoder() for p in (every, half)]
    assert (len(decoders[0].layers), len(decoders[1].layers), len(half.expert.layers)) == (2, 1, 1)
    assert not any(".layers.1." in name and "vision" not in name for name in half.state_dict())
    calls = {i: [] for i in range(2)}
    handles = [
        layer.register_forward_hook(lambda *a, i=i: calls[i].append(1)) for i, layer in enumerate(decoders[0].layers)
    ]
    batch = _batch(half)
    with torch.no_grad():
        full_prefix = every.vlm.prefix(*every._observation(batch))
        for handle in handles:
            handle.remove()
        calls_half = []
        decoders[1].layers[0].register_forward_hook(lambda *a: calls_half.append(1))
        half_prefix = half.vlm.prefix(*half._observation(batch))
    assert (len(calls[0]), len(calls[1]), len(calls_half), len(half_prefix.keys)) == (1, 1, 1, 1)
    torch.testing.assert_close(half_prefix.keys[0], full_prefix.keys[0])
    torch.testing.assert_close(half_prefix.values[0], full_prefix.values[0])
    before = train_steps(half, batch, 2, _loss)
    with torch.no_grad():
        assert _loss(half, batch).item() < before[0]
    expected = _chunk(half, batch)
    loaded = VLAPolicy.from_pretrained(half.save_pretrained(tmp_path / "policy"))
    assert loaded.config.vlm.expert_layers == "first_half"
    np.testing.assert_array_equal(_chunk(loaded, batch), expected)


def test_expert_layers_is_checked_and_only_for_the_expert(base):
    family, path = base
    with pytest.raises(ConfigError, match="expert_layers 'last_half'; valid choices.*all"):
        _config(family, path, expert_layers="last_half")
    with pytest.raises(ConfigError, match="got {'vlm.expert_layers': 'first_half'}"):
        _config(family, path, head="adaptive_grid", expert_layers="first_half")

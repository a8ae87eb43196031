"""The pretrained-VLM policy (policy.backbone=vlm) on tiny random-initialised PaliGemma and Idefics3 models
built here from their configs (policies/vlm/tiny.py), saved with save_pretrained beside a WordLevel tokenizer
built with `tokenizers`, and loaded offline as a downloaded model would be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from polyact.errors import ConfigError
from polyact.policies import HeadConfig, PolicyConfig, VLAPolicy, build_policy
from polyact.policies.vlm.backbone import PROMPT
from polyact.policies.vlm.policy import ADAPTER_DIR, VLMPolicy
from polyact.policies.vlm.tiny import IMAGE, VOCAB, tiny_model

from .conftest import INSTRUCTIONS, make_batch, make_spec, make_stats, train_steps

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("peft")


def _config(family: str, path: Path, finetune: str = "lora", **vlm: Any) -> PolicyConfig:
    return PolicyConfig(
        size="tiny",
        backbone="vlm",
        vlm={"path": str(path), "family": family, "finetune": finetune, "lora_rank": 4, "lora_alpha": 8, **vlm},
        head=HeadConfig(name="uniform_bins", decoding="autoregressive"),
        history=1,
        chunk=2,
        replan_every=1,
    )


def _policy(family: str, path: Path, finetune: str = "lora", cameras=("front", "wrist"), **vlm: Any) -> VLMPolicy:
    spec = make_spec(cameras=cameras, size=24)
    torch.manual_seed(0)
    return build_policy(_config(family, path, finetune, **vlm), spec, make_stats(spec), INSTRUCTIONS)


def _batch(policy: VLMPolicy, seed: int = 0) -> dict[str, Any]:
    spec = make_spec(cameras=tuple(policy.config.cameras), size=24)
    return make_batch(spec, batch=3, history=1, chunk=policy.config.chunk, seed=seed)


def _logits(policy: VLMPolicy, batch: dict[str, Any]) -> torch.Tensor:
    """Teacher-forced action-token logits (B, H*A, V) of the batch's actions."""
    with torch.no_grad():
        actions = policy.normalizer.normalize("action", batch["action"].float())
        instructions, images = policy._observation(batch)
        return policy.vlm.action_logits(instructions, images, policy.head.encode(actions).flatten(1))


def test_vla_policy_with_vlm_backbone_builds_the_vlm_policy(base):
    family, path = base
    spec = make_spec(cameras=("front",), size=24)
    policy = VLAPolicy(build_policy(_config(family, path), spec, make_stats(spec), INSTRUCTIONS).config)
    assert isinstance(policy, VLMPolicy)
    assert len(policy.config.vlm.base_sha256) == 64


def test_prompt_has_one_image_per_camera_then_openvla_prompt(base):
    family, path = base
    policy = _policy(family, path)
    batch = _batch(policy)
    instructions, images = policy._observation(batch)
    assert images.shape == (3, 2, 24, 24, 3)
    inputs = policy.vlm.inputs(instructions[:1], images[:1], None)
    ids = inputs["input_ids"][0].tolist()
    per_image = policy.vlm.family.image_ids()
    assert ids.count(IMAGE) == 2 * per_image.count(IMAGE) > 0
    text = policy.vlm.tokenizer.decode([i for i in ids if i not in policy.vlm.family.special_ids()])
    assert (
        text.split() == PROMPT.format(instruction=instructions[0]).lower().replace("?", " ?").replace(":", " :").split()
    )
    pixels = inputs["pixel_values"]
    size = policy.vlm.family.image_size
    assert pixels.shape[-2:] == (size, size) and pixels.numel() == 2 * 3 * size * size


def test_action_tokens_are_the_last_256_ids_and_round_trip(base):
    family, path = base
    tokens = _policy(family, path).head
    ids = torch.arange(VOCAB - 256, VOCAB)
    actions = tokens.decode(ids)  # tokens -> bins -> actions
    assert torch.equal(tokens.encode(actions), ids)  # -> tokens
    assert torch.equal(tokens.ids_to_bins(ids), 255 - torch.arange(256))  # OpenVLA: the last id is the lowest bin
    assert tokens.encode(torch.tensor([-1.0, 1.0])).tolist() == [VOCAB - 1, VOCAB - 256]
    x = torch.linspace(-1, 1, 1001)
    assert (tokens.decode(tokens.encode(x)) - x).abs().max() <= 1 / 256 + 1e-6  # half a bin


def test_missing_or_incomplete_base_model_names_directory_and_files(base, tmp_path):
    family, path = base
    with pytest.raises(ConfigError, match=f"{tmp_path / 'nowhere'}.*does not exist.*config.json"):
        _policy(family, tmp_path / "nowhere")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(ConfigError, match=r"lacks \['preprocessor_config.json', 'tokenizer files', 'model"):
        _policy(family, partial)


@pytest.mark.parametrize("finetune", ["lora", "full", "frozen_vision"])
def test_training_steps_reduce_the_loss(base, finetune):
    family, path = base
    policy = _policy(family, path, finetune)
    batch = _batch(policy)
    losses = train_steps(policy, batch, 3)
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0], losses


def test_frozen_vision_keeps_the_vision_tower_and_saves_without_it(base, tmp_path):
    family, path = base
    policy = _policy(family, path, "frozen_vision")
    tower = policy.vlm.family.vision_tower(policy.vlm.model)
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    train_steps(policy, _batch(policy), 2)
    assert all(torch.equal(v, tower.state_dict()[k]) for k, v in before.items())
    policy.save_pretrained(tmp_path / "p")
    keys = list(load_file(str(tmp_path / "p" / "model.safetensors")))
    assert any(k.startswith("vlm.") for k in keys) and not any("vision" in k for k in keys)
    loaded = VLAPolicy.from_pretrained(tmp_path / "p")
    batch = _batch(policy, seed=1)
    np.testing.assert_array_equal(loaded.predict_chunk(batch), policy.eval().predict_chunk(batch))


def test_greedy_decoding_is_argmax_of_the_training_logits(base):
    """Decoding (generate, left-padded prompts of different lengths) sees what training sees."""
    family, path = base
    policy = _policy(family, path)
    batch = _batch(policy)
    train_steps(policy, batch, 3)
    policy.eval()
    chunk = policy.predict_chunk(batch)
    decoded = {**batch, "action": torch.as_tensor(chunk)}
    logits = _logits(policy, decoded)
    greedy = policy.head.restrict(logits).argmax(-1)
    expected = policy.head.encode(policy.normalizer.normalize("action", torch.as_tensor(chunk))).flatten(1)
    assert torch.equal(greedy, expected)
    assert len({len(t) for t in batch["instruction"]}) > 1  # the prompts were padded


def test_lora_adapters_saved_alone_and_reload_identically(base, tmp_path):
    family, path = base
    policy = _policy(family, path, "lora")
    train_steps(policy, _batch(policy), 2)
    policy.eval()
    policy.save_pretrained(tmp_path / "p")
    adapter = tmp_path / "p" / ADAPTER_DIR
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    own = load_file(str(tmp_path / "p" / "model.safetensors"))
    assert own and not any(k.startswith("vlm.") for k in own)  # base frozen, adapters in vlm_adapter/
    loaded = VLAPolicy.from_pretrained(tmp_path / "p")
    batch = _batch(policy, seed=2)
    torch.testing.assert_close(_logits(loaded, batch), _logits(policy, batch), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.predict_chunk(batch), policy.predict_chunk(batch))


def test_merged_lora_equals_unmerged(base):
    family, path = base
    policy = _policy(family, path, "lora")
    batch = _batch(policy)
    train_steps(policy, batch, 2)
    policy.eval()
    unmerged = _logits(policy, batch)
    policy.merge_lora()
    assert not any("lora_" in k for k in policy.state_dict())
    torch.testing.assert_close(_logits(policy, batch), unmerged, rtol=1e-4, atol=1e-4)


def test_full_finetune_loads_without_the_base_and_gives_identical_actions(base, tmp_path):
    family, path = base
    copy = tmp_path / "base"
    copy.mkdir()
    for file in path.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    policy = _policy(family, copy, "full")
    train_steps(policy, _batch(policy), 2)
    policy.eval()
    policy.save_pretrained(tmp_path / "p")
    for file in copy.iterdir():
        file.unlink()
    copy.rmdir()
    loaded = VLAPolicy.from_pretrained(tmp_path / "p")
    batch = _batch(policy, seed=3)
    np.testing.assert_array_equal(loaded.predict_chunk(batch), policy.predict_chunk(batch))


def test_a_different_base_model_at_load_time_is_refused(base, tmp_path):
    family, path = base
    copy = tmp_path / "base"
    copy.mkdir()
    for file in path.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    policy = _policy(family, copy, "lora")
    policy.save_pretrained(tmp_path / "p")
    torch.manual_seed(1)
    tiny_model(family).save_pretrained(copy)  # other weights under the same path
    with pytest.raises(ConfigError, match=f"{copy}.*not the one this policy was trained on"):
        VLAPolicy.from_pretrained(tmp_path / "p")


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(base):
    family, path = base
    batch = None
    results = []
    for checkpointing in (False, True):
        policy = _policy(family, path, "lora", gradient_checkpointing=checkpointing).train()
        batch = batch or _batch(policy)
        loss, _ = policy.compute_loss(batch)
        loss.backward()
        grads = {k: p.grad for k, p in policy.named_parameters() if p.requires_grad}
        results.append((loss.detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0])
    for k, g in results[0][1].items():
        torch.testing.assert_close(g, results[1][1][k])


def test_vlm_backbone_rejects_what_it_does_not_support_yet(base):
    family, path = base
    with pytest.raises(ConfigError, match="'history': 2"):  # head.name=l1 (the default) is the action expert's
        PolicyConfig(backbone="vlm", vlm={"path": str(path), "family": family}, history=2)
    with pytest.raises(ConfigError, match="'head.decoding': 'parallel'"):
        PolicyConfig(backbone="vlm", vlm={"path": str(path)}, head=HeadConfig(name="uniform_bins"))
    with pytest.raises(ConfigError, match="vlm.path"):
        PolicyConfig(backbone="vlm", head=HeadConfig(name="uniform_bins", decoding="autoregressive"))


def test_served_policy_answers_with_the_policys_chunk(base, tmp_path):
    """`polyact serve` runs a saved VLM policy through the same in-process ServedPolicy as any other."""
    from polyact.deploy.policy import ServedPolicy

    family, path = base
    _policy(family, path, cameras=("front",)).save_pretrained(tmp_path / "p")
    policy = VLAPolicy.from_pretrained(tmp_path / "p")
    batch = _batch(policy, seed=4)
    served = ServedPolicy(policy, policy.env_spec, "vlm")
    observation = {k: batch[f"obs/{k}"][0, -1].numpy() for k in served.inputs}
    observation["instruction"] = batch["instruction"][0]
    np.testing.assert_array_equal(served.infer(observation), policy.predict_chunk(observation)[0])


def test_training_checkpoint_weights_of_a_tied_embedding_save_and_load(base, tmp_path):
    """PaliGemma ties its input embedding and output layer; a checkpoint writes both names."""
    from safetensors.torch import save_file

    from polyact.train.checkpoint import _own_storage

    family, path = base
    state = _policy(family, path, "full").state_dict()
    save_file(_own_storage(state), str(tmp_path / "weights.safetensors"))
    loaded = load_file(str(tmp_path / "weights.safetensors"))
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_a_training_checkpoint_of_a_lora_policy_restores_its_averaged_weights(base, tmp_path):
    """The EMA of a LoRA run lives in the adapters the checkpoint's policy directory keeps beside its weights."""
    from polyact.train.checkpoint import load_checkpoint, save_checkpoint
    from polyact.train.distributed import Dist
    from polyact.train.ema import EMA

    family, path = base
    policy = _policy(family, path, "lora")
    ema = EMA(policy, decay=0.5)
    train_steps(policy, _batch(policy), 2)
    ema.update()
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    saved = save_checkpoint(tmp_path, 2, policy, policy, optimizer, scheduler, {}, ema, d, keep=1)
    averaged = [s.clone() for s in ema.shadow]

    restored = _policy(family, path, "lora")
    restored_ema = EMA(restored, decay=0.5)
    restored_optimizer = torch.optim.AdamW([p for p in restored.parameters() if p.requires_grad], lr=1e-3)
    restored_scheduler = torch.optim.lr_scheduler.LambdaLR(restored_optimizer, lambda step: 1.0)
    assert load_checkpoint(saved, restored, restored_optimizer, restored_scheduler, restored_ema)["step"] == 2
    assert all(torch.equal(a, b) for a, b in zip(restored_ema.shadow, averaged, strict=True))
    trained = [p for p in policy.parameters() if p.requires_grad]
    assert all(
        torch.equal(a, b) for a, b in zip([p for p in restored.parameters() if p.requires_grad], trained, strict=True)
    )

"""SpatialVLA's grid tokens through the language model (backbone=vlm, head.name=adaptive_grid) on tiny
random-initialised PaliGemma and Idefics3 models (policies/vlm/tiny.py): new ids in the tokenizer and the
embedding matrices, initialised as SpatialVLA does, the grid fitted to the actions and re-discretised onto
another dataset, greedy decoding, and the policy directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from polyact.errors import ConfigError
from polyact.policies import HeadConfig, PolicyConfig, VLAPolicy, build_policy
from polyact.policies.heads.adaptive_grid import QUANTITIES, RANGES, interpolate_grid
from polyact.policies.vlm.grid_tokens import TOKEN
from polyact.policies.vlm.policy import VLMPolicy
from polyact.policies.vlm.tiny import VOCAB, tiny_model

from .conftest import INSTRUCTIONS, make_batch, make_spec, make_stats, train_steps

pytest.importorskip("transformers")
pytest.importorskip("peft")

GRID = {"grid_translation": [2, 3, 2], "grid_rotation": [2, 2, 2], "grid_gripper": 2}


def _samples(action_dim: int, scale: float = 0.8, seed: int = 0) -> np.ndarray:
    """Raw actions (N, A) the grid is fitted on; the gripper at its two levels."""
    g = np.random.default_rng(seed)
    samples = g.uniform(-scale, scale, (400, action_dim)).astype(np.float32)
    samples[:, -1] = np.sign(samples[:, -1])
    return samples


def _policy(family: str, path: Path, finetune: str = "lora", action_dim: int = 4, samples=None) -> VLMPolicy:
    spec = make_spec(action_dim=action_dim, cameras=("front",), size=24)
    cfg = PolicyConfig(
        size="tiny",
        backbone="vlm",
        vlm={"path": str(path), "family": family, "finetune": finetune, "lora_rank": 4, "lora_alpha": 8},
        head=HeadConfig(name="adaptive_grid", **GRID),
        chunk=2,
        replan_every=1,
    )
    torch.manual_seed(0)
    samples = _samples(action_dim) if samples is None else samples
    return build_policy(cfg, spec, make_stats(spec), INSTRUCTIONS, samples)


def _batch(policy: VLMPolicy, seed: int = 0) -> dict[str, Any]:
    spec = make_spec(action_dim=policy.config.action_dim, cameras=("front",), size=24)
    return make_batch(spec, batch=3, history=1, chunk=policy.config.chunk, seed=seed)


def _logits(policy: VLMPolicy, batch: dict[str, Any], actions: torch.Tensor | None = None) -> torch.Tensor:
    """Teacher-forced logits (B, H*T, V) of `actions` (the batch's by default)."""
    with torch.no_grad():
        actions = batch["action"].float() if actions is None else actions
        targets = policy.head.encode(policy.normalizer.normalize("action", actions)).flatten(1)
        instructions, images = policy._observation(batch)
        return policy.vlm.action_logits(instructions, images, targets)


@pytest.mark.parametrize("action_dim", [4, 7])
def test_grid_cells_are_new_tokens_after_the_vocabulary_and_round_trip(base, action_dim):
    family, path = base
    policy = _policy(family, path, action_dim=action_dim)
    tokens, tokenizer = policy.head, policy.vlm.tokenizer
    t, r, g = 2 * 3 * 2, 2 * 2 * 2 if action_dim == 7 else 0, 2
    assert (tokens.begin, tokens.end, tokens.tokens_per_step) == (VOCAB, VOCAB + t + r + g, 3 if r else 2)
    names = [TOKEN.format(i) for i in range(t + r + g)]
    assert tokenizer.convert_ids_to_tokens(list(range(VOCAB, tokens.end))) == names
    assert tokenizer(TOKEN.format(1), add_special_tokens=False)["input_ids"] == [VOCAB + 1]
    # every cell: ids -> actions at the cell centres -> the same ids
    parts = [torch.arange(tokens.begin, tokens.begin + t), torch.arange(tokens.end - g, tokens.end)]
    if r:
        parts.insert(1, torch.arange(tokens.begin + t, tokens.begin + t + r))
    ids = torch.stack(torch.meshgrid(*parts, indexing="ij"), dim=-1).reshape(1, -1, len(parts))  # (1, cells, T)
    actions = tokens.decode(ids)
    assert actions.shape == (1, ids.shape[1], action_dim)
    assert torch.equal(tokens.encode(actions), ids)


def test_prompt_is_openvlas_and_only_each_parts_ids_are_decoded(base):
    family, path = base
    policy = _policy(family, path)
    instructions, images = policy._observation(_batch(policy))
    prompt = policy.vlm.inputs(instructions[:1], images[:1], None)["input_ids"][0].tolist()
    assert max(prompt) < VOCAB  # the prefix is untouched by the added tokens
    logits = torch.zeros(1, 4, policy.vlm.model.get_output_embeddings().weight.shape[0])
    allowed = torch.isfinite(policy.head.restrict(logits, first=1)[0])  # positions 1..4: gripper, translation, ...
    t = 2 * 3 * 2
    assert allowed[0].nonzero().flatten().tolist() == [VOCAB + t, VOCAB + t + 1]
    assert allowed[1].nonzero().flatten().tolist() == list(range(VOCAB, VOCAB + t))
    assert torch.equal(allowed[2], allowed[0]) and torch.equal(allowed[3], allowed[1])


def test_new_rows_are_initialised_as_spatialvla_does(base):
    """The head's rows of the new ids are the mean of its old rows (SpatialVLA's pretraining script); the
    model's old rows are the base's."""
    family, path = base
    model = _policy(family, path, "full").vlm.model
    original = type(tiny_model(family)).from_pretrained(path, local_files_only=True)
    head, old = model.get_output_embeddings().weight.detach(), original.get_output_embeddings().weight.detach()
    assert head.shape[0] == VOCAB + 2 * 3 * 2 + 2
    torch.testing.assert_close(head[:VOCAB], old)
    torch.testing.assert_close(head[VOCAB:], old.mean(0).expand(head.shape[0] - VOCAB, -1))
    embed = model.get_input_embeddings().weight.detach()
    torch.testing.assert_close(embed[:VOCAB], original.get_input_embeddings().weight.detach())


@pytest.mark.parametrize("finetune", ["lora", "full", "frozen_vision"])
def test_training_steps_reduce_the_loss(base, finetune):
    family, path = base
    policy = _policy(family, path, finetune)
    losses = train_steps(policy, _batch(policy), 3)
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0], losses


def test_greedy_decoding_is_the_per_part_argmax_of_the_training_logits(base):
    family, path = base
    policy = _policy(family, path)
    batch = _batch(policy)
    train_steps(policy, batch, 3)
    policy.eval()
    chunk = torch.as_tensor(policy.predict_chunk(batch))
    assert chunk.shape == (3, 2, 4)
    greedy = policy.head.restrict(_logits(policy, batch, chunk)).argmax(-1)
    expected = policy.head.encode(policy.normalizer.normalize("action", chunk)).flatten(1)
    assert torch.equal(greedy, expected)


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_save_and_load_give_identical_outputs_and_serve(base, tmp_path, finetune):
    from polyact.deploy.policy import ServedPolicy

    family, path = base
    policy = _policy(family, path, finetune)
    train_steps(policy, _batch(policy), 2)
    policy.eval()
    policy.save_pretrained(tmp_path / "p")
    loaded = VLAPolicy.from_pretrained(tmp_path / "p")
    batch = _batch(policy, seed=1)
    torch.testing.assert_close(_logits(loaded, batch), _logits(policy, batch), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.predict_chunk(batch), policy.predict_chunk(batch))
    served = ServedPolicy(loaded, loaded.env_spec, "vlm-grid")
    observation = {k: batch[f"obs/{k}"][0, -1].numpy() for k in served.inputs}
    observation["instruction"] = batch["instruction"][0]
    np.testing.assert_array_equal(served.infer(observation), policy.predict_chunk(observation)[0])


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_a_new_dataset_refits_the_grid_and_moves_the_embeddings(base, finetune):
    """SpatialVLA's re-discretisation: the grid is fitted to the new actions, the translation tokens' rows
    are interpolated from the old cell centres to the new ones, the gripper's stay."""
    family, path = base
    policy = _policy(family, path, finetune)
    train_steps(policy, _batch(policy), 2)
    tokens = policy.head
    before = [rows.clone() for rows in tokens.rows()]
    old_edges = tokens.grid.edges("r").clone()
    old_axes = tokens.grid.axis_centres("translation")
    t = tokens.sizes[0]

    policy.adapt_to_dataset(make_stats(make_spec(cameras=("front",))), _samples(4, scale=0.8))  # the same actions
    for rows, old in zip(tokens.rows(), before, strict=True):
        torch.testing.assert_close(rows, old)  # same grid, same rows
    policy.adapt_to_dataset(make_stats(make_spec(cameras=("front",))), _samples(4, scale=0.3, seed=1))
    assert not torch.equal(tokens.grid.edges("r"), old_edges)
    new_axes = tokens.grid.axis_centres("translation")
    ranges = [RANGES[q] for q in QUANTITIES[:3]]
    for rows, old in zip(tokens.rows(), before, strict=True):
        moved = interpolate_grid(old[:t].reshape(2, 3, 2, -1), old_axes, new_axes, ranges).reshape(t, -1)
        torch.testing.assert_close(rows[:t], moved)
        assert not torch.allclose(rows[:t], old[:t])
        torch.testing.assert_close(rows[t:], old[t:])
    # the moved rows are the ones the model reads
    batch = _batch(policy)
    ids = policy.head.encode(policy.normalizer.normalize("action", batch["action"].float()))
    embedded = policy.vlm.model.get_input_embeddings()(ids.flatten())
    rows = tokens.rows()[0][ids.flatten() - tokens.begin]
    scale = embedded.norm(dim=-1) / rows.norm(dim=-1)  # Gemma scales its embeddings by sqrt(width)
    torch.testing.assert_close(scale, scale[:1].expand_as(scale))
    torch.testing.assert_close(embedded, rows * scale[:, None])


def test_the_grid_must_be_fitted(base):
    family, path = base
    spec = make_spec(cameras=("front",), size=24)
    cfg = PolicyConfig(
        backbone="vlm", vlm={"path": str(path), "family": family}, head=HeadConfig(name="adaptive_grid", **GRID)
    )
    with pytest.raises(ConfigError, match="fits its grid to the dataset's actions"):
        build_policy(cfg, spec, make_stats(spec), INSTRUCTIONS)

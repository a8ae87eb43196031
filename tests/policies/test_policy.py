"""The whole policy: building from stats + EnvSpec, training steps, save/load, inference inputs, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from polyact.errors import ConfigError, ContractError, UnknownNameError
from polyact.policies import (
    HeadConfig,
    MissingStatisticError,
    PolicyConfig,
    RandomShift,
    VLAPolicy,
    build_policy,
    build_vocab,
)
from polyact.policies.language import UNK, WordTokenizer

VARIANTS = [
    ("l1", {}, {}),
    ("uniform_bins", {}, {}),
    ("uniform_bins", {"decoding": "autoregressive", "temperature": 1.0}, {}),
    ("adaptive_grid", {}, {}),
    ("diffusion", {"sample_steps": 3}, {"depth": True}),
    ("flow", {"sample_steps": 3}, {"encoder": "vit", "patch_size": 8}),
]
IDS = [f"{h}-{i}" for i, (h, _, _) in enumerate(VARIANTS)]


@pytest.mark.parametrize(("head", "head_overrides", "vision"), VARIANTS, ids=IDS)
def test_train_two_steps_save_load_same_outputs(synthetic, tmp_path, head, head_overrides, vision):
    spec = synthetic["spec"](7 if head == "adaptive_grid" else 4)
    policy = synthetic["policy"](head, spec, head_overrides=head_overrides, vision=vision)
    batch = synthetic["batch"](spec)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    for step in range(2):
        loss, metrics = policy.compute_loss(batch, generator=torch.Generator().manual_seed(step))
        assert torch.isfinite(loss) and "loss" in metrics
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())

    policy.eval()
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = VLAPolicy.from_pretrained(tmp_path / "ckpt")
    assert not loaded.training
    for k, v in policy.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    a = policy.predict_chunk(batch, generator=torch.Generator().manual_seed(5))
    b = loaded.predict_chunk(batch, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 4, spec.action.dim) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    la = policy.compute_loss(batch, generator=torch.Generator().manual_seed(9))[0]
    lb = loaded.compute_loss(batch, generator=torch.Generator().manual_seed(9))[0]
    assert la.item() == lb.item()


def test_checkpoint_holds_config_vocab_statistics_and_grid(synthetic, tmp_path):
    spec = synthetic["spec"](7)
    policy = synthetic["policy"]("adaptive_grid", spec)
    policy.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["head"]["name"] == "adaptive_grid" and cfg["cameras"] == ["corner"] and cfg["action_dim"] == 7
    assert cfg["text"]["vocab"] == build_vocab(["pick up the red block", "open the drawer", "push the button"])
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        q99 = f.get_tensor("normalizer.action__q99")
    assert {
        "normalizer.action__q01",
        "normalizer.state__mean",
        "normalizer.rgb__corner__std",
        "head.grid.edges_theta",
        "head.grid.fitted",
    } <= keys
    assert torch.allclose(q99, torch.full((7,), 0.9))
    loaded = VLAPolicy.from_pretrained(tmp_path)
    assert torch.equal(loaded.head.grid.edges_phi, policy.head.grid.edges_phi)


def test_missing_statistic_names_feature_and_key(synthetic):
    spec = synthetic["spec"]()
    stats = synthetic["stats"](spec)
    del stats["action"]["q99"]
    with pytest.raises(MissingStatisticError, match=r"'action' lack key 'q99'"):
        build_policy(synthetic["config"](), spec, stats, ["x"])
    stats = synthetic["stats"](spec)
    del stats["goal"]
    with pytest.raises(MissingStatisticError, match=r"lack feature 'goal'"):
        build_policy(synthetic["config"](), spec, stats, ["x"])
    stats = synthetic["stats"](spec)
    del stats["rgb/corner"]["std"]
    with pytest.raises(MissingStatisticError, match=r"'rgb/corner' lack key 'std'"):
        build_policy(synthetic["config"](), spec, stats, ["x"])


def test_config_errors_suggest_names():
    with pytest.raises(UnknownNameError, match="closest first: diffusion"):
        HeadConfig(name="difusion")
    with pytest.raises(UnknownNameError, match="closest first: small"):
        PolicyConfig(size="smal")
    with pytest.raises(UnknownNameError, match="policy config key 'chunks'.*chunk"):
        PolicyConfig.from_dict({"chunks": 4})
    with pytest.raises(UnknownNameError, match="head key 'num_bin'"):
        PolicyConfig.from_dict({"head": {"num_bin": 4}})
    with pytest.raises(ConfigError, match="replan_every"):
        PolicyConfig(chunk=4, replan_every=5)
    cfg = PolicyConfig(size="small").resolved()
    assert cfg.width == 128 and cfg.vision.channels == [32, 64] and cfg.head.denoiser_width == 256
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg


def test_size_applies_when_given_after_the_defaults():
    """hydra builds the default config first and sets `size` afterwards: the size must still apply."""
    from polyact.config import load_config

    tiny = load_config(PolicyConfig, ["size=tiny"]).resolved()
    assert (tiny.width, tiny.depth) == (32, 1)
    assert load_config(PolicyConfig, ["size=tiny", "width=64"]).resolved().width == 64


def test_build_policy_checks_environment(synthetic):
    spec = synthetic["spec"]()
    with pytest.raises(UnknownNameError, match="camera 'front'"):
        build_policy(synthetic["config"](cameras=["front"]), spec, synthetic["stats"](spec), ["x"])
    with pytest.raises(ConfigError, match="action_dim=7 disagrees"):
        build_policy(synthetic["config"](action_dim=7), spec, synthetic["stats"](spec), ["x"])
    with pytest.raises(ConfigError, match="action_samples"):
        build_policy(synthetic["config"]("adaptive_grid"), spec, synthetic["stats"](spec), ["x"])
    with pytest.raises(ConfigError, match="build_policy"):
        VLAPolicy(PolicyConfig(size="tiny"))


def test_batch_errors(synthetic):
    spec = synthetic["spec"]()
    policy = synthetic["policy"]("l1", spec)
    batch = synthetic["batch"](spec, chunk=5)
    with pytest.raises(ContractError, match=r"chunks of \(4, 4\)"):
        policy.compute_loss(batch)
    batch = synthetic["batch"](spec)
    del batch["obs/goal"]
    with pytest.raises(ContractError, match="'obs/goal'"):
        policy.compute_loss(batch)


def test_padded_actions_do_not_change_policy_loss(synthetic):
    spec = synthetic["spec"]()
    policy = synthetic["policy"]("diffusion", spec, head_overrides={"sample_steps": 2})
    batch = synthetic["batch"](spec)
    pad = batch["action_is_pad"]
    assert bool(pad.any())
    changed = dict(batch, action=batch["action"].clone())
    changed["action"][pad] = 100.0
    loss = [policy.compute_loss(b, generator=torch.Generator().manual_seed(0))[0].item() for b in (batch, changed)]
    assert loss[0] == loss[1]


def test_predict_chunk_takes_contract_observations(synthetic):
    spec = synthetic["spec"]()
    policy = synthetic["policy"]("l1", spec).eval()
    batch = synthetic["batch"](spec, batch=2)
    obs = {k[len("obs/") :]: v[1, -1].numpy() for k, v in batch.items() if k.startswith("obs/")}
    obs["instruction"] = batch["instruction"][1]
    single = policy.predict_chunk(obs)
    listed = policy.predict_chunk([obs, obs])
    assert single.shape == (1, 4, 4) and listed.shape == (2, 4, 4)
    np.testing.assert_allclose(listed[0], single[0], atol=1e-5)
    # actions come back in raw units: inside the un-normalised [q01, q99] range
    assert float(np.abs(single).max()) <= 0.9 + 1e-5


def test_random_shift_only_in_training(synthetic):
    spec = synthetic["spec"]()
    policy = synthetic["policy"]("l1", spec)
    batch = synthetic["batch"](spec)
    policy.train()
    losses = {policy.compute_loss(batch, generator=torch.Generator().manual_seed(s))[0].item() for s in range(4)}
    assert len(losses) > 1
    policy.eval()
    losses = {policy.compute_loss(batch, generator=torch.Generator().manual_seed(s))[0].item() for s in range(4)}
    assert len(losses) == 1


def test_random_shift_crops_and_moves_principal_point():
    shift = RandomShift(2)
    img = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6)
    centred = torch.tensor([[2, 2], [2, 2]])
    assert torch.equal(shift(img, centred), img)
    moved = shift(img, torch.tensor([[3, 2], [2, 4]]))  # (dx, dy)
    assert torch.equal(moved[0, :, :, :5], img[0, :, :, 1:])  # content moves left by one column
    assert torch.equal(moved[1, :, :3], img[1, :, 2:])  # and up by two rows
    k = torch.eye(3).expand(2, 3, 3).clone()
    k[:, 0, 2], k[:, 1, 2] = 3.0, 2.5
    k2 = shift.shift_intrinsics(k, torch.tensor([[3, 2], [2, 4]]))
    assert k2[0, 0, 2].item() == 2.0 and k2[1, 1, 2].item() == 0.5


def test_a_cropped_policy_sees_what_an_uncropped_one_sees_of_the_cropped_images(synthetic):
    """`vision.crop` on 32x32 images = the same weights on the 16x16 window, depth and Ego3D included."""
    top, left = 4, 12
    cropped = synthetic["policy"]("l1", synthetic["spec"](size=32), vision={"crop": [top, left, 16, 16], "depth": True})
    small = synthetic["policy"]("l1", synthetic["spec"](size=16), vision={"depth": True})
    small.load_state_dict(cropped.state_dict())
    full = synthetic["batch"](synthetic["spec"](size=32))
    window = dict(full)
    for key in ("obs/rgb/corner", "obs/depth/corner"):
        window[key] = full[key][:, :, top : top + 16, left : left + 16].contiguous()
    k = full["obs/intrinsics/corner"].clone()
    k[..., 0, 2] -= left
    k[..., 1, 2] -= top
    window["obs/intrinsics/corner"] = k
    cropped.eval(), small.eval()
    with torch.no_grad():
        torch.testing.assert_close(cropped.encode(full), small.encode(window))


def test_a_crop_outside_the_image_or_malformed_is_refused(synthetic):
    spec = synthetic["spec"](size=32)
    with pytest.raises(ConfigError, match=r"vision.crop \[20, 0, 16, 16\] .* reaches outside the cameras' 32x32"):
        synthetic["policy"]("l1", spec, vision={"crop": [20, 0, 16, 16]})
    with pytest.raises(ConfigError, match=r"vision.crop is \[top, left, height, width\] .* got \[0, 0, 16\]"):
        synthetic["policy"]("l1", spec, vision={"crop": [0, 0, 16]})
    with pytest.raises(ConfigError, match="after vision.crop, if any"):
        synthetic["policy"]("l1", spec, vision={"crop": [0, 0, 14, 14]})  # not divisible by the stride


def test_word_tokenizer_and_vocab():
    vocab = build_vocab(["Pick up the red block.", "open the drawer"])
    assert vocab == ["block", "drawer", "open", "pick", "red", "the", "up"]
    tok = WordTokenizer(vocab)
    assert tok.encode("pick the BLUE block") == [5, 7, UNK, 2]


def test_instruction_cache_in_eval_only(synthetic):
    spec = synthetic["spec"]()
    policy = synthetic["policy"]("l1", spec)
    batch = synthetic["batch"](spec)
    policy.compute_loss(batch)
    assert not policy.text._cache
    policy.eval()
    policy.predict_chunk(batch)
    assert set(policy.text._cache) == set(batch["instruction"])
    policy.load_state_dict(policy.state_dict())
    assert not policy.text._cache
    policy.predict_chunk(batch)
    policy.train()
    assert not policy.text._cache


def test_adapt_to_dataset_replaces_statistics_and_refits_grid(synthetic):
    spec = synthetic["spec"](7)
    policy = synthetic["policy"]("adaptive_grid", spec)
    stats = synthetic["stats"](spec)
    stats["action"]["q99"] = np.full(7, 2.0, np.float32)
    edges = policy.head.grid.edges_r.clone()
    samples = np.random.default_rng(1).normal(0.5, 0.2, (300, 7)).astype(np.float32)
    policy.adapt_to_dataset(stats, samples)
    assert torch.allclose(policy.normalizer.stat("action", "q99"), torch.full((7,), 2.0))
    assert not torch.equal(policy.head.grid.edges_r, edges)


def test_configs_work_as_hydra_structured_configs():
    from omegaconf import OmegaConf

    schema = OmegaConf.structured(PolicyConfig)
    merged = OmegaConf.merge(schema, OmegaConf.from_dotlist(["size=tiny", "head.name=flow", "vision.depth=true"]))
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, PolicyConfig) and isinstance(cfg.head, HeadConfig)
    assert cfg.head.name == "flow" and cfg.vision.depth and cfg.resolved().width == 32
    with pytest.raises(Exception, match="nmae"):  # a YAML typo fails at load
        OmegaConf.merge(schema, OmegaConf.from_dotlist(["head.nmae=flow"]))
    with pytest.raises(UnknownNameError, match="closest first: flow"):
        OmegaConf.to_object(OmegaConf.merge(schema, OmegaConf.from_dotlist(["head.name=flwo"])))


@pytest.mark.parametrize("ensemble", [False, True])
def test_chunk_runner_drives_a_policy(synthetic, ensemble):
    from polyact.policies import ChunkRunner

    spec = synthetic["spec"]()
    policy = synthetic["policy"]("flow", spec, head_overrides={"sample_steps": 2}).eval()
    batch = synthetic["batch"](spec, batch=2)
    observations = []
    for i in range(2):
        obs = {k[len("obs/") :]: v[i, -1].numpy() for k, v in batch.items() if k.startswith("obs/")}
        observations.append(dict(obs, instruction=batch["instruction"][i]))
    runner = ChunkRunner(policy, num_slots=2, execution="temporal_ensemble" if ensemble else "receding_horizon")
    runner.reset([0, 1], seeds=[0, 1])
    for step in range(5):
        actions = runner.act(observations)
        assert actions.shape == (2, 4) and np.isfinite(actions).all()
        if step == 2:
            runner.reset([1], seeds=[2])


def test_predict_chunk_takes_a_batch_of_contract_observations(synthetic):
    """Evaluation's ObsBatch: contract keys with a batch axis and a list of instructions."""
    spec = synthetic["spec"]()
    policy = synthetic["policy"]("l1", spec).eval()
    batch = synthetic["batch"](spec, batch=3)
    obs = {k[len("obs/") :]: v[:, -1].numpy() for k, v in batch.items() if k.startswith("obs/")}
    obs["instruction"] = list(batch["instruction"])
    together = policy.predict_chunk(obs)
    one_by_one = np.concatenate([policy.predict_chunk({k: v[i] for k, v in obs.items()}) for i in range(3)])
    assert together.shape == (3, 4, 4)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    with pytest.raises(ContractError, match="instruction"):
        policy.predict_chunk({k: v for k, v in obs.items() if k != "instruction"})


def test_cpu_options_pooled_text_and_one_readout(synthetic):
    """text.pool gives the trunk one instruction token; head.readouts=1 one readout for the whole chunk."""
    spec = synthetic["spec"]()
    lean = synthetic["policy"]("l1", spec, text={"pool": True}, head_overrides={"readouts": 1})
    wide = synthetic["policy"]("l1", spec)
    batch = synthetic["batch"](spec)
    tokens, pad = lean.text(batch["instruction"])
    assert tokens.shape[1] == 1 and not pad.any()
    assert lean.trunk.readouts.shape[0] == 1 and wide.trunk.readouts.shape[0] == lean.config.chunk
    loss, _ = lean.compute_loss(batch)
    assert torch.isfinite(loss)
    assert lean.predict_chunk(batch).shape == (3, lean.config.chunk, spec.action.dim)
    # pooling is the mean of the word tokens' features
    lean.text.pool = False
    per_word, per_word_pad = lean.text(batch["instruction"][:1])
    lean.text.pool = True
    pooled, _ = lean.text(batch["instruction"][:1])
    assert torch.allclose(pooled[0, 0], per_word[0][~per_word_pad[0]].mean(0), atol=1e-6)

"""`polyact train` with the VLM backbone (policy.backbone=vlm) on a real Meta-World dataset: SpatialVLA's
grid tokens under bf16, and FSDP over gloo with 2 processes, one shard unit per decoder layer, equal to
one process; pi0's flow action expert trained and served. The base models are tiny random PaliGemma /
Idefics3 models written here (policies/vlm/tiny.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polyact.config import load_config
from polyact.data import EpisodeDataset
from polyact.data.windows import WindowDataset, collate_windows
from polyact.policies import VLAPolicy
from polyact.train import TrainConfig, train
from polyact.train.loop import observation_keys

from .conftest import assert_torchrun_step_equals, losses

pytest.importorskip("transformers")
pytest.importorskip("peft")

OPENVLA = ["policy.head.name=uniform_bins", "policy.head.decoding=autoregressive"]


@pytest.fixture(scope="module", params=["paligemma", "idefics3"])
def vlm_base(request, metaworld_dataset, tmp_path_factory) -> tuple[str, Path]:
    from polyact.policies.vlm.tiny import write_tiny_base

    family = request.param
    instructions = [i for per_task in EpisodeDataset(metaworld_dataset).tasks.values() for i in per_task]
    return family, write_tiny_base(tmp_path_factory.mktemp(f"vlm_{family}"), family, instructions)


def overrides(dataset: Path, out: Path, family: str, base: Path, *extra: str) -> list[str]:
    return [
        f"dataset={dataset}",
        f"out={out}",
        "policy.backbone=vlm",
        f"policy.vlm.path={base}",
        f"policy.vlm.family={family}",
        "policy.chunk=2",
        "policy.replan_every=1",
        "batch_size=4",
        "num_workers=0",
        "progress=false",
        "log_every=1",
        "optim.warmup_steps=1",
        "ema_decay=0",
        *extra,
    ]


def test_grid_tokens_train_under_bf16_and_the_policy_acts(metaworld_dataset, vlm_base, tmp_path):
    family, base = vlm_base
    grid = ["policy.head.name=adaptive_grid", "policy.head.grid_translation=[4,4,2]", "policy.vlm.finetune=lora"]
    cfg = load_config(
        TrainConfig, overrides(metaworld_dataset, tmp_path, family, base, *grid, "precision=bf16", "steps=3")
    )
    final = train(cfg)
    assert all(np.isfinite(list(losses(tmp_path).values())))
    policy = VLAPolicy.from_pretrained(final)
    assert bool(policy.head.grid.fitted)
    dataset = EpisodeDataset(metaworld_dataset)
    windows = WindowDataset(dataset, history=1, chunk=2, keys=observation_keys(policy, dataset))
    batch = collate_windows([windows[i] for i in (0, 9)])
    chunk = policy.predict_chunk(batch)
    assert chunk.shape == (2, 2, 4) and np.isfinite(chunk).all()


def test_the_shard_units_are_the_families_decoder_layers(vlm_base, metaworld_dataset, tmp_path):
    family, base = vlm_base
    cfg = load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, family, base, *OPENVLA))
    from polyact.policies import build_policy

    dataset = EpisodeDataset(metaworld_dataset)
    policy = build_policy(cfg.policy, dataset.env_spec, dataset.stats, ["reach"])
    units = policy.shard_units()
    expected = {"paligemma": "GemmaDecoderLayer", "idefics3": "LlamaDecoderLayer"}[family]
    assert [type(u).__name__ for u in units] == [expected] * 2  # the tiny models' 2 decoder layers


@pytest.mark.slow
@pytest.mark.parametrize(("finetune", "head"), [("full", "adaptive_grid"), ("lora", "adaptive_grid"), ("lora", "l1")])
def test_one_fsdp_step_over_two_processes_equals_one_process(metaworld_dataset, vlm_base, tmp_path, finetune, head):
    """Grid tokens, and the action expert (one more module of the root unit reading the sharded layers'
    KV cache) under L1, which draws no noise, so the step is a deterministic function of the batch."""
    family, base = vlm_base
    common = ["steps=1", f"policy.vlm.finetune={finetune}", f"policy.head.name={head}"]
    common.append("policy.head.grid_translation=[4,4,2]")
    single = tmp_path / "single"
    train(load_config(TrainConfig, overrides(metaworld_dataset, single, family, base, *common)))
    multi = tmp_path / "fsdp"
    assert_torchrun_step_equals(
        single, multi, overrides(metaworld_dataset, multi, family, base, *common, "sharding=fsdp")
    )


def test_the_flow_expert_trains_and_its_served_policy_acts(metaworld_dataset, vlm_base, tmp_path):
    """pi0's action expert (head.name=flow) through `polyact train`, then `polyact serve`'s ServedPolicy:
    a seeded request gets the policy's own chunk for that seed's noise."""
    import torch

    from polyact.deploy.policy import ServedPolicy

    family, base = vlm_base
    expert = ["policy.head.name=flow", "policy.head.sample_steps=3", "policy.vlm.finetune=lora", "steps=3"]
    final = train(load_config(TrainConfig, overrides(metaworld_dataset, tmp_path, family, base, *expert)))
    assert all(np.isfinite(list(losses(tmp_path).values())))
    policy = VLAPolicy.from_pretrained(final)
    assert policy.expert is not None
    served = ServedPolicy(policy, policy.env_spec, "vlm-flow")
    dataset = EpisodeDataset(metaworld_dataset)
    windows = WindowDataset(dataset, history=1, chunk=2, keys=observation_keys(policy, dataset))
    batch = collate_windows([windows[9]])
    observation = {k: np.asarray(batch[f"obs/{k}"][0, -1]) for k in served.inputs}
    observation["instruction"] = batch["instruction"][0]
    chunk = served.infer(observation, seed=3)
    noise = np.random.default_rng(3).standard_normal((1, 2, 4), np.float32)
    assert chunk.shape == (2, 4) and np.isfinite(chunk).all()
    np.testing.assert_allclose(chunk, policy.predict_chunk(observation, noise=torch.as_tensor(noise))[0], atol=1e-6)
    assert not np.allclose(chunk, served.infer(observation, seed=4))

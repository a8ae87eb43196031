"""AdaMerging: the entropies it minimises against hand-computed values, its layer-wise merge, and a run
that lowers the merged policy's entropy on unlabelled inputs and saves an ordinary checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from polyact.data import DatasetWriter
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.errors import ConfigError
from polyact.policies import HeadConfig, PolicyConfig, VLAPolicy, build_policy
from polyact.policies.heads.base import token_entropy
from polyact.train.adamerging import adamerge, layerwise_merge, unlabelled_batches
from polyact.train.merge import MergeConfig, run

SPEC = synthetic_env_spec(cameras=("corner",), height=16, width=16)


def test_token_entropy_is_shannon_entropy_in_nats():
    torch.testing.assert_close(token_entropy(torch.zeros(2, 4)), torch.full((2,), math.log(4)))
    p = torch.tensor([0.5, 0.25, 0.25])
    torch.testing.assert_close(token_entropy(p.log()), -(p * p.log()).sum())
    assert float(token_entropy(torch.tensor([0.0, -1e4]))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("decoding", ["parallel", "autoregressive"])
def test_a_uniform_bins_head_that_knows_nothing_has_the_entropy_of_a_uniform_choice(decoding):
    policy = policy_with(HeadConfig(name="uniform_bins", num_bins=8, decoding=decoding, decoder_depth=1), seed=0)
    with torch.no_grad():
        policy.head.logits[1].weight.zero_()
        policy.head.logits[1].bias.zero_()
    readout = torch.randn(3, policy.head.num_readouts, policy.config.width or 32)
    torch.testing.assert_close(policy.head.entropy(readout), torch.full((3,), math.log(8)))
    with torch.no_grad():
        policy.head.logits[1].bias[2] = 50.0  # one bin is certain
    assert policy.head.entropy(readout).max() < 1e-6


def test_the_adaptive_grid_head_averages_the_entropy_of_its_parts():
    policy = policy_with(HeadConfig(name="adaptive_grid"), seed=0)
    readout = torch.randn(2, policy.head.num_readouts, policy.head.width)
    with torch.no_grad():
        parts = policy.head._logits(readout)
        expected = torch.stack([token_entropy(x) for x in parts], -1).flatten(1).mean(1)
        torch.testing.assert_close(policy.head.entropy(readout), expected)
    assert all(0 < float(e) <= max(math.log(x.shape[-1]) for x in parts) for e in expected)


def test_a_policy_without_a_predicted_distribution_is_refused():
    policy = policy_with(HeadConfig(name="l1"), seed=0)
    with pytest.raises(ConfigError, match="the l1 head predicts no distribution .* policy.translation=heatmap"):
        policy.prediction_entropy({})


def test_layerwise_merge_scales_each_task_vector_by_its_layers_coefficient():
    base = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.0])}
    vectors = [
        {"a": torch.tensor([1.0, 1.0]), "b": torch.tensor([2.0])},
        {"a": torch.tensor([0.0, -1.0]), "b": torch.tensor([4.0])},
    ]
    coefficients = torch.tensor([[0.5, 0.1], [0.2, 0.3]])  # (tasks, layers)
    merged = layerwise_merge(base, vectors, coefficients, {"a": 0, "b": 1})
    torch.testing.assert_close(merged["a"], torch.tensor([1.0 + 0.5, 2.0 + 0.5 - 0.2]))
    torch.testing.assert_close(merged["b"], torch.tensor([0.1 * 2.0 + 0.3 * 4.0]))


def test_adamerging_lowers_the_entropy_and_saves_an_ordinary_checkpoint(tmp_path: Path):
    data = write_dataset(tmp_path / "unlabelled")
    base = policy_with(HeadConfig(name="uniform_bins", num_bins=16), seed=0, data=data)
    base.save_pretrained(tmp_path / "base")
    vectors = []
    for i in (1, 2):
        finetune = VLAPolicy.from_pretrained(tmp_path / "base")
        torch.manual_seed(i)
        with torch.no_grad():
            for p in finetune.parameters():
                p.add_(0.05 * torch.randn_like(p))
        finetune.save_pretrained(tmp_path / f"ft{i}")
        vectors.append(
            {n: p.detach() - dict(base.named_parameters())[n].detach() for n, p in finetune.named_parameters()}
        )

    # no steps: the prior, i.e. task arithmetic with scale = prior
    merged, coefficients, (before, after) = adamerge(base, vectors, unlabelled_batches(base, str(data), 8, 0), 0, 0.3)
    name = "trunk.blocks.0.qkv.weight"
    weight = dict(base.named_parameters())[name].detach()
    torch.testing.assert_close(merged[name], weight + 0.3 * (vectors[0][name] + vectors[1][name]))
    assert before == after and torch.equal(coefficients, torch.full_like(coefficients, 0.3))

    merged, coefficients, (before, after) = adamerge(base, vectors, unlabelled_batches(base, str(data), 8, 0), 30, 0.3)
    assert after < before
    assert coefficients.shape == (2, len(base.trunk.blocks) + 2)
    assert (
        (coefficients >= 0).all()
        and (coefficients <= 1).all()
        and not torch.equal(coefficients, torch.full_like(coefficients, 0.3))
    )

    cfg = MergeConfig(
        str(tmp_path / "base"), [str(tmp_path / "ft1"), str(tmp_path / "ft2")], str(tmp_path / "m"),
        method="adamerging", data=str(data), steps=30, batch_size=8,
    )  # fmt: skip
    saved = VLAPolicy.from_pretrained(run(cfg))
    torch.testing.assert_close(dict(saved.named_parameters())[name].detach(), merged[name])


def test_adamerging_settings_are_checked():
    with pytest.raises(ConfigError, match="method=adamerging needs data=DIR"):
        MergeConfig("b", ["f"], "o", method="adamerging")
    with pytest.raises(ConfigError, match="drop lines=true"):
        MergeConfig("b", ["f"], "o", method="adamerging", data="d", lines=True)
    with pytest.raises(ConfigError, match="steps >= 0, batch_size >= 1"):
        MergeConfig("b", ["f"], "o", method="adamerging", data="d", batch_size=0)


def write_dataset(path: Path) -> Path:
    with DatasetWriter.for_spec(path, SPEC) as writer:
        for seed in range(6):
            writer.add_episode(synthetic_episode(SPEC, 10, seed=seed, task=SPEC.tasks[seed % 3]))
    return path


def policy_with(head: HeadConfig, seed: int, data: Path | None = None) -> VLAPolicy:
    ones = {d: np.ones(d, np.float32) for d in (3, 4, 5)}
    stats = {
        k: {"mean": 0 * ones[d], "std": ones[d], "min": -ones[d], "max": ones[d], "q01": -ones[d], "q99": ones[d]}
        for k, d in (("action", 4), ("state", 5), ("goal", 3), ("rgb/corner", 3))
    }
    instructions = [f"{task} the object (variant {v})" for task in SPEC.tasks for v in (0, 1)]
    torch.manual_seed(seed)
    cfg = PolicyConfig(
        size="tiny", chunk=2, replan_every=1, head=head, vision={"channels": [8, 16], "stem": 2, "grid": 2}
    )
    return build_policy(cfg, SPEC, stats, instructions, action_samples=np.random.default_rng(0).uniform(-1, 1, (64, 4)))

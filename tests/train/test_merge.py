"""`polyact merge`: task arithmetic, TIES' trim / sign election / disjoint mean and LiNeS' layer scales
against hand-computed values, and a merged policy that is an ordinary checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from polyact.data.synthetic import synthetic_env_spec
from polyact.errors import ConfigError
from polyact.policies import PolicyConfig, VLAPolicy, build_policy
from polyact.train.merge import MergeConfig, lines_scales, merge_weights, run, task_arithmetic, ties, trim


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values)


def test_task_arithmetic_adds_the_scaled_sum_of_task_vectors():
    base = {"w": t(1.0, 1.0)}
    cfg = MergeConfig("b", ["1", "2"], "o", scale=0.5)
    merged = merge_weights(base, [{"w": t(2.0, 3.0)}, {"w": t(4.0, -1.0)}], cfg, blocks=0)
    torch.testing.assert_close(merged["w"], t(1.0 + 0.5 * (1 + 3), 1.0 + 0.5 * (2 - 2)))
    torch.testing.assert_close(task_arithmetic([{"w": t(1.0)}, {"w": t(2.0)}])["w"], t(3.0))
    # with LiNeS the scale is the layer's: "w" is before the trunk, layer 0, so alpha (default 1 / fine-tunes)
    cfg = MergeConfig("b", ["1", "2"], "o", lines=True)
    lines = merge_weights(base, [{"w": t(2.0, 3.0)}, {"w": t(4.0, -1.0)}], cfg, blocks=0)
    torch.testing.assert_close(lines["w"], t(1.0 + 0.5 * 4, 1.0))


def test_ties_trims_elects_signs_and_averages_the_agreeing_values():
    # the 2 largest of 4 magnitudes survive, over all of a vector's tensors
    kept = trim({"a": t(0.1, -5.0, 3.0), "b": t(0.2)}, density=0.5)
    torch.testing.assert_close(kept["a"], t(0.0, -5.0, 3.0))
    torch.testing.assert_close(kept["b"], t(0.0))
    vectors = [{"w": t(1.0, -2.0, 3.0, 0.1)}, {"w": t(-1.0, -1.5, 4.0, 0.2)}]
    # no trimming: signs of the sums are 0, -, +, +; a zero sum elects nothing
    torch.testing.assert_close(ties(vectors, density=1.0)["w"], t(0.0, -1.75, 3.5, 0.15))
    # half trimmed: (0, -2, 3, 0) and (0, -1.5, 4, 0)
    torch.testing.assert_close(ties(vectors, density=0.5)["w"], t(0.0, -1.75, 3.5, 0.0))
    # a value against the elected sign is left out of the mean
    torch.testing.assert_close(ties([{"w": t(3.0)}, {"w": t(-1.0)}], density=1.0)["w"], t(3.0))


def test_lines_scales_grow_linearly_with_depth():
    names = ["images.encoders.corner.net.0.weight", "trunk.blocks.0.qkv.weight", "trunk.blocks.1.proj.bias"]
    names += ["trunk.norm.weight", "head.net.0.weight", "trunk.readouts"]
    scales = lines_scales(names, blocks=2, alpha=0.1, beta=0.6)  # L = 4 layers: 0.1, 0.3, 0.5, 0.7
    assert [round(scales[n], 6) for n in names] == [0.1, 0.3, 0.5, 0.5, 0.7, 0.1]


def tiny_policy(seed: int) -> VLAPolicy:
    spec = synthetic_env_spec(cameras=("corner",), height=16, width=16)
    ones = {d: np.ones(d, np.float32) for d in (3, 4, 5)}
    stats = {
        k: {"mean": 0 * ones[d], "std": ones[d], "min": -ones[d], "max": ones[d], "q01": -ones[d], "q99": ones[d]}
        for k, d in (("action", 4), ("state", 5), ("goal", 3), ("rgb/corner", 3))
    }
    torch.manual_seed(seed)
    cfg = PolicyConfig(size="tiny", chunk=2, replan_every=1, vision={"channels": [8, 16], "stem": 2, "grid": 2})
    return build_policy(cfg, spec, stats, ["reach the goal"])


def test_a_merged_policy_is_a_checkpoint_with_the_merged_weights(tmp_path: Path):
    base, one, two = tiny_policy(0), tiny_policy(1), tiny_policy(2)
    for name, policy in (("base", base), ("one", one), ("two", two)):
        policy.save_pretrained(tmp_path / name)
    cfg = MergeConfig(str(tmp_path / "base"), [str(tmp_path / "one"), str(tmp_path / "two")], str(tmp_path / "m"))
    merged = VLAPolicy.from_pretrained(run(cfg))
    name = "trunk.blocks.0.qkv.weight"
    p = {n: dict(x.named_parameters())[name].detach() for n, x in (("b", base), ("1", one), ("2", two))}
    expected = p["b"] + 0.3 * ((p["1"] - p["b"]) + (p["2"] - p["b"]))
    torch.testing.assert_close(dict(merged.named_parameters())[name].detach(), expected)
    for key, value in base.state_dict().items():  # buffers (statistics, grids) are the base's
        if key not in dict(base.named_parameters()):
            torch.testing.assert_close(merged.state_dict()[key], value)
    with pytest.raises(ConfigError, match="fine-tune 1 does not have the base's architecture: \\['w'\\] differ"):
        merge_weights({"w": t(1.0, 2.0)}, [{"w": t(1.0)}], MergeConfig("b", ["1"], "o"), 0)
    with pytest.raises(ConfigError, match="needs base=DIR"):
        MergeConfig()
    with pytest.raises(ConfigError, match="unknown merge method 'tie'"):
        MergeConfig("b", ["f"], "o", method="tie")

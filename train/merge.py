"""`polyact merge`: one multi-task policy from a base policy and fine-tunes of it, by model merging.

A fine-tune's task vector is its weights minus the base's (Ilharco et al., 2023, "Editing Models with Task
Arithmetic"). The methods combine the task vectors and add the result to the base:

    task_arithmetic   theta = theta_0 + scale * sum_t tau_t
    ties              (Yadav et al., 2023, "TIES-Merging") trim each tau_t to its `density` fraction of
                      largest magnitudes, elect each weight's sign as the sign of the trimmed vectors' sum,
                      average the trimmed values that agree with it: theta = theta_0 + scale * tau_m
    lines=true        (Wang et al., ICLR 2025, "LiNeS: Post-training Layer Scaling Prevents Forgetting and
                      Enhances Model Merging") instead of one `scale`, the combined vector of layer l of L
                      is scaled by alpha + beta * l / (L - 1): shallow layers, which hold general features,
                      move little; deep ones more. Here layer 0 is everything before the trunk (encoders,
                      embeddings, projections), layers 1..B its blocks (and its final norm with the last),
                      layer B + 1 the action head and the heatmap decoder.

Only parameters merge; buffers (normalisation statistics, fitted grids, the heatmap search box) are the
base's, so fine-tunes meant for merging should keep the base's statistics (all of them trained on data
normalised alike). Every policy must have the base's architecture.

    adamerging        (Yang et al., ICLR 2024) one coefficient per task vector and LiNeS layer, learned by
                      minimising the merged policy's prediction entropy on unlabelled inputs (`data=DIR`);
                      train/adamerging.py says which heads have an entropy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from polyact.errors import ConfigError, unknown_name

METHODS = ("task_arithmetic", "ties", "adamerging")
_BLOCK = re.compile(r"^trunk\.blocks\.(\d+)\.")


@dataclass
class MergeConfig:
    """`polyact merge base=DIR finetuned=[DIR,DIR,...] out=NEW_DIR [method=ties] [scale=0.3] [density=0.2]
    [lines=true lines_alpha=... lines_beta=...] [method=adamerging data=DIR steps=100]`; train/merge.py says
    what each does."""

    base: str = ""
    finetuned: list[str] = field(default_factory=list)
    out: str = ""
    method: str = "task_arithmetic"
    scale: float = 0.3  # lambda, for task_arithmetic and ties without lines; adamerging's prior
    density: float = 0.2  # ties: the fraction of each task vector kept
    lines: bool = False
    lines_alpha: float = 0.0  # 0: 1 / number of fine-tunes (the paper's multi-task choice)
    lines_beta: float = 0.5
    data: str = ""  # adamerging: a dataset of the target tasks whose observations (not actions) are the inputs
    steps: int = 100  # adamerging: Adam steps on the coefficients
    batch_size: int = 16  # adamerging: windows per step (the paper's 16)
    seed: int = 0  # adamerging: the order of the windows

    def __post_init__(self) -> None:
        if not self.base or not self.finetuned or not self.out:
            raise ConfigError("polyact merge needs base=DIR, finetuned=[DIR,...] and out=NEW_DIR")
        if self.method not in METHODS:
            raise unknown_name("merge method", self.method, METHODS)
        if not 0 < self.density <= 1:
            raise ConfigError(f"density is the fraction of each task vector kept, in (0, 1]; got {self.density}")
        if self.method == "adamerging":
            if not self.data:
                raise ConfigError("method=adamerging needs data=DIR: a dataset whose observations are its inputs")
            if self.lines:
                raise ConfigError("method=adamerging learns a coefficient per layer itself; drop lines=true")
            if self.steps < 0 or self.batch_size < 1:
                raise ConfigError(f"adamerging needs steps >= 0, batch_size >= 1; not {self.steps}, {self.batch_size}")


def task_arithmetic(vectors: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The sum of the task vectors."""
    return {name: torch.stack([v[name] for v in vectors]).sum(0) for name in vectors[0]}


def trim(vector: dict[str, torch.Tensor], density: float) -> dict[str, torch.Tensor]:
    """The task vector with all but its `density` fraction of largest magnitudes (over all weights) zeroed."""
    flat = torch.cat([t.flatten().abs() for t in vector.values()])
    keep = max(1, int(round(density * flat.numel())))
    threshold = torch.topk(flat, keep).values.min()
    return {name: torch.where(t.abs() >= threshold, t, torch.zeros_like(t)) for name, t in vector.items()}


def ties(vectors: list[dict[str, torch.Tensor]], density: float) -> dict[str, torch.Tensor]:
    """TIES' merged vector: trim, elect signs, disjoint mean."""
    trimmed = [trim(v, density) for v in vectors]
    out = {}
    for name in vectors[0]:
        values = torch.stack([t[name] for t in trimmed])  # (T, ...)
        sign = torch.sign(values.sum(0))
        agree = (torch.sign(values) == sign) & (values != 0)
        out[name] = (values * agree).sum(0) / agree.sum(0).clamp(min=1)
    return out


def layer_of(name: str, blocks: int) -> int:
    """LiNeS' depth of a parameter: 0 before the trunk, 1..blocks its blocks, blocks + 1 the heads."""
    match = _BLOCK.match(name)
    if match:
        return int(match.group(1)) + 1
    if name.startswith("trunk.norm"):
        return blocks  # the trunk's final norm goes with its last block
    if name.startswith(("head.", "heatmap.")):
        return blocks + 1
    return 0  # encoders, embeddings, projections, the trunk's readout tokens


def lines_scales(names: list[str], blocks: int, alpha: float, beta: float) -> dict[str, float]:
    """alpha + beta * l / (L - 1) for each parameter's layer l of L = blocks + 2."""
    last = blocks + 1
    return {name: alpha + beta * layer_of(name, blocks) / last for name in names}


def task_vectors(
    base: dict[str, torch.Tensor], finetuned: list[dict[str, torch.Tensor]], cfg: MergeConfig
) -> list[dict[str, torch.Tensor]]:
    """Each fine-tune's floating-point parameters minus the base's; a fine-tune of another shape is named."""
    names = [n for n, t in base.items() if t.is_floating_point()]
    for i, state in enumerate(finetuned):
        bad = [n for n in names if n not in state or state[n].shape != base[n].shape]
        if bad:
            raise ConfigError(f"fine-tune {cfg.finetuned[i]} does not have the base's architecture: {bad[:5]} differ")
    return [{n: state[n].float() - base[n].float() for n in names} for state in finetuned]


def merge_weights(
    base: dict[str, torch.Tensor], finetuned: list[dict[str, torch.Tensor]], cfg: MergeConfig, blocks: int
) -> dict[str, torch.Tensor]:
    """The merged parameters of task arithmetic or TIES (floating-point entries of `base`; the caller keeps
    the rest as the base's)."""
    vectors = task_vectors(base, finetuned, cfg)
    names = list(vectors[0])
    combined = task_arithmetic(vectors) if cfg.method == "task_arithmetic" else ties(vectors, cfg.density)
    if cfg.lines:
        alpha = cfg.lines_alpha or 1.0 / len(finetuned)
        scales = lines_scales(names, blocks, alpha, cfg.lines_beta)
    else:
        scales = dict.fromkeys(names, cfg.scale)
    return {n: (base[n].float() + scales[n] * combined[n]).to(base[n].dtype) for n in names}


def run(cfg: MergeConfig) -> Path:
    """Load the policies, merge their parameters, save the result as an ordinary policy directory."""
    from polyact.policies import VLAPolicy

    base = VLAPolicy.from_pretrained(cfg.base)
    params = dict(base.named_parameters())
    weights = {n: p.detach() for n, p in params.items()}
    finetuned = [{n: p.detach() for n, p in VLAPolicy.from_pretrained(p).named_parameters()} for p in cfg.finetuned]
    if cfg.method == "adamerging":
        from polyact.train.adamerging import adamerge, unlabelled_batches

        batches = unlabelled_batches(base, cfg.data, cfg.batch_size, cfg.seed)
        merged, coefficients, (before, after) = adamerge(
            base, task_vectors(weights, finetuned, cfg), batches, cfg.steps, cfg.scale
        )
        how = (
            f"{cfg.steps} steps on {cfg.data}: entropy {before:.4f} -> {after:.4f} nats; coefficients per fine-tune "
            f"(layers 0..{coefficients.shape[1] - 1}): {[[round(c, 3) for c in row] for row in coefficients.tolist()]}"
        )
    else:
        merged = merge_weights(weights, finetuned, cfg, len(base.trunk.blocks))
        how = "LiNeS layer scaling" if cfg.lines else f"scale {cfg.scale}"
    with torch.no_grad():
        for name, value in merged.items():
            params[name].copy_(value.to(params[name].dtype))
    out = base.save_pretrained(cfg.out)
    print(f"{out}: {cfg.method} of {len(finetuned)} fine-tunes of {cfg.base} ({how})")
    return out

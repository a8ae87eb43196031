"""AdaMerging: merging coefficients learned per layer and task without labels.

Yang et al., ICLR 2024, "AdaMerging: Adaptive Model Merging for Multi-Task Learning" (layer-wise
AdaMerging). The merged weights of layer l are theta_0,l + sum_t lambda_{t,l} tau_{t,l}, with tau_t the
task vectors; the coefficients start at a prior (the paper's 0.3, `scale` here), are trained with Adam
(lr 1e-3, batches of 16, the paper's settings) to minimise the mean Shannon entropy of the merged model's
predictions on unlabelled test inputs, and are kept in [0, 1] (the paper's code clamps them). The paper
shows that entropy tracks the prediction loss on classification tasks.

What the entropy is of, here: the action-token distributions of the token heads (uniform_bins,
adaptive_grid) and, with `policy.translation=heatmap`, each camera's heatmap. The L1 head regresses and
the diffusion and flow heads sample, so neither predicts a distribution whose entropy a merge could
lower; AdaMerging refuses them unless the heatmap gives one (`VLAPolicy.prediction_entropy`).

The unlabelled inputs are the observations of a dataset of the target tasks (`data=DIR`): windows drawn
task-balanced, their actions never read. Layers are LiNeS' (`merge.layer_of`): everything before the
trunk, each trunk block, the heads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader

from polyact.data import EpisodeDataset, TaskBalancedSampler
from polyact.data.windows import WindowDataset, collate_windows
from polyact.policies import VLAPolicy
from polyact.train.loop import observation_keys
from polyact.train.merge import layer_of

ADAM_LR = 1e-3


class _Entropy(nn.Module):
    """The policy's mean prediction entropy as a forward pass, so `functional_call` can swap its weights."""

    def __init__(self, policy: VLAPolicy):
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.policy.prediction_entropy(batch).mean()


def layerwise_merge(
    base: dict[str, torch.Tensor],
    vectors: list[dict[str, torch.Tensor]],
    coefficients: torch.Tensor,
    layers: dict[str, int],
) -> dict[str, torch.Tensor]:
    """base + sum_t coefficients[t, layers[name]] * vectors[t][name], differentiable in the coefficients."""
    return {
        name: value + sum(coefficients[t, layers[name]] * v[name] for t, v in enumerate(vectors))
        for name, value in base.items()
    }


def unlabelled_batches(policy: VLAPolicy, data: str, batch_size: int, seed: int) -> Iterator[dict[str, Any]]:
    """Endless task-balanced batches of the observations the policy reads (the dataset's actions unused)."""
    dataset = EpisodeDataset(data)
    windows = WindowDataset(
        dataset, history=policy.config.history, chunk=policy.config.chunk, keys=observation_keys(policy, dataset)
    )
    sampler = TaskBalancedSampler(np.asarray(windows.item_tasks()), seed=seed)
    loader = DataLoader(windows, batch_size=batch_size, sampler=sampler, collate_fn=collate_windows, drop_last=False)
    while True:
        yield from loader
        sampler.set_epoch(sampler.epoch + 1)


def adamerge(
    policy: VLAPolicy,
    vectors: list[dict[str, torch.Tensor]],
    batches: Iterator[dict[str, Any]],
    steps: int,
    prior: float,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, tuple[float, float]]:
    """Learn the coefficients (tasks, layers) on `steps` batches, starting at `prior`.

    Returns the merged parameters, the coefficients, and the entropy on one fixed batch of inputs at the
    prior and at the learned coefficients."""
    policy.eval()  # no dropout, no augmentation: the entropy of the policy as it will act
    base = {n: p.detach() for n, p in policy.named_parameters() if n in vectors[0]}
    blocks = len(policy.trunk.blocks)
    layers = {n: layer_of(n, blocks) for n in base}
    coefficients = torch.full((len(vectors), blocks + 2), prior, requires_grad=True)
    optimizer = torch.optim.Adam([coefficients], lr=ADAM_LR, betas=(0.9, 0.999))
    wrapped = _Entropy(policy)

    def entropy(batch: dict[str, Any]) -> torch.Tensor:
        merged = {f"policy.{n}": p for n, p in layerwise_merge(base, vectors, coefficients, layers).items()}
        return functional_call(wrapped, merged, (batch,), strict=False)

    probe = next(batches)
    with torch.no_grad():
        before = float(entropy(probe))
    for _ in range(steps):
        loss = entropy(next(batches))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            coefficients.clamp_(0.0, 1.0)
    with torch.no_grad():
        after = float(entropy(probe))
        merged = layerwise_merge(base, vectors, coefficients, layers)
    return merged, coefficients.detach(), (before, after)

"""The action-head contract and the pieces several heads share.

A head turns the trunk's readout tokens into a chunk of normalised actions (openpi's two-method model
contract, `compute_loss` / `sample_actions`):

    loss(readout (B, R, D), actions (B, H, A) in [-1, 1], pad (B, H) True = padding) -> (scalar, metrics)
    sample(readout (B, R, D), generator=None, noise=None) -> actions (B, H, A) normalised

A head whose parameters depend on the dataset's actions (SpatialVLA's adaptive grid) sets `fits_to_data`
and implements the optional hook `fit(actions, first)`; the policy and the training loop call it without
knowing which head they hold. A head that predicts a distribution over discrete action tokens sets
`predicts_distribution` and implements `entropy(readout)` (AdaMerging's objective, train/adamerging.py).

Padded steps (past the episode end) never reach the loss: their actions are replaced by zeros before a
head looks at them (a denoiser sees the whole noisy chunk, so their values would otherwise leak into
the other steps' predictions) and they are excluded from the average.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from polyact.policies.config import HeadConfig


class ActionHead(nn.Module, ABC):
    """Readout tokens -> normalised action chunks; `num_readouts` tells the trunk how many it needs."""

    num_readouts: int
    fits_to_data: ClassVar[bool] = False  # True: `fit` must see the training actions before training
    predicts_distribution: ClassVar[bool] = False  # True: `entropy` gives its token distributions' entropy

    def __init__(self, cfg: HeadConfig, width: int, chunk: int, action_dim: int):
        super().__init__()
        self.cfg, self.width, self.chunk, self.action_dim = cfg, width, chunk, action_dim

    @abstractmethod
    def loss(
        self,
        readout: torch.Tensor,
        actions: torch.Tensor,
        pad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean loss over the real (unpadded) steps, and metrics as detached scalars (no device sync)."""

    @abstractmethod
    def sample(
        self, readout: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Normalised actions (B, H, A); `generator`/`noise` make sampling heads reproducible."""

    def fit(self, actions: torch.Tensor, first: bool = True) -> None:  # noqa: B027 (optional hook)
        """Fit to the dataset's normalised actions (N, A): `first` for a new head, False to move a trained
        head to a new dataset. Heads that do not set `fits_to_data` have nothing to fit."""

    def entropy(self, readout: torch.Tensor) -> torch.Tensor:
        """(B,) mean Shannon entropy (nats) of the predicted action-token distributions, differentiable.
        Regression and denoising heads predict no distribution to measure."""
        raise NotImplementedError(f"{type(self).__name__} predicts no distribution over actions")


def zero_padded(actions: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """actions (B, H, A) with padded steps set to 0, so they cannot influence anything."""
    return actions.masked_fill(pad[..., None], 0.0)


def masked_mean(values: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Mean of values (B, H, ...) over each sample's real steps (pad (B, H) False), then over the batch.

    Every window weighs the same however much of its chunk is padding, and the mean over a global batch
    is the mean of its per-process means, so a data-parallel step equals a single-process one."""
    keep = (~pad).to(values.dtype).reshape(*pad.shape, *([1] * (values.dim() - 2))).expand_as(values)
    per_sample = (values * keep).flatten(1).sum(1) / keep.flatten(1).sum(1).clamp(min=1.0)
    return per_sample.mean()


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of softmax(logits) over the last axis; (..., V) -> (...)."""
    log_probs = logits.float().log_softmax(-1)
    return -(log_probs.exp() * log_probs).sum(-1)


def sincos_embedding(x: torch.Tensor, dim: int, min_period: float, max_period: float) -> torch.Tensor:
    """(B,) scalars -> (B, dim) sin/cos features with periods spaced geometrically in [min, max]
    (openpi pi0 `posemb_sincos`; Diffusion Policy's SinusoidalPosEmb is min=2*pi, max=2*pi*1e4)."""
    fraction = torch.linspace(0.0, 1.0, dim // 2, device=x.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = x.float()[:, None] * (2 * math.pi / period)[None]
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


class MLPResNet(nn.Module):
    """Octo's denoiser body (octo-models/octo octo/model/components/diffusion.py `MLPResNet`): a linear in,
    residual blocks LN -> Linear(4w) -> SiLU -> Linear(w), then SiLU -> Linear out (we add a LayerNorm
    before that last SiLU, which keeps the output scale stable however many blocks there are)."""

    def __init__(self, in_dim: int, width: int, blocks: int, out_dim: int):
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.SiLU(), nn.Linear(4 * width, width))
            for _ in range(blocks)
        )
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        for block in self.blocks:
            x = x + block(x)
        return self.out(x)


class ChunkDenoiser(nn.Module):
    """Predicts noise (diffusion) or velocity (flow) for a whole noisy chunk at once, conditioned on the
    readouts and the time: MLPResNet([readouts flattened -> w, time features -> w, x_t flattened]).
    Seeing the whole chunk lets it keep the steps of one sample consistent (one mode, not a mix)."""

    def __init__(self, width: int, num_readouts: int, chunk: int, action_dim: int, hidden: int, blocks: int):
        super().__init__()
        self.cond = nn.Sequential(nn.LayerNorm(num_readouts * width), nn.Linear(num_readouts * width, hidden))
        self.time = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.net = MLPResNet(2 * hidden + chunk * action_dim, hidden, blocks, chunk * action_dim)
        self.chunk, self.action_dim = chunk, action_dim

    def condition(self, readout: torch.Tensor) -> torch.Tensor:
        """readout (B, R, D) -> (B, hidden); computed once per chunk, not once per denoising step."""
        return self.cond(readout.reshape(readout.shape[0], -1))

    def forward(self, x: torch.Tensor, time_features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, H, A), time_features (B, hidden), cond (B, hidden) from `condition` -> (B, H, A)."""
        b = x.shape[0]
        h = torch.cat([cond, self.time(time_features), x.reshape(b, -1)], dim=-1)
        return self.net(h).reshape(b, self.chunk, self.action_dim)

"""Action heads behind one interface (base.ActionHead); `make_head` picks one by `HeadConfig.name`."""

from __future__ import annotations

from polyact.policies.config import HeadConfig
from polyact.policies.heads.adaptive_grid import AdaptiveGridHead
from polyact.policies.heads.base import ActionHead
from polyact.policies.heads.diffusion import DiffusionHead
from polyact.policies.heads.flow import FlowHead
from polyact.policies.heads.l1 import L1Head
from polyact.policies.heads.uniform_bins import UniformBinsHead

__all__ = ["ActionHead", "AdaptiveGridHead", "DiffusionHead", "FlowHead", "L1Head", "UniformBinsHead", "make_head"]


def make_head(cfg: HeadConfig, width: int, horizon: int, action_dim: int, heads: int) -> ActionHead:
    """The head named by cfg.name for chunks of `horizon` actions of `action_dim` dimensions."""
    if cfg.name == "uniform_bins":
        return UniformBinsHead(cfg, width, horizon, action_dim, heads)
    if cfg.name == "adaptive_grid":
        return AdaptiveGridHead(cfg, width, horizon, action_dim)
    if cfg.name == "diffusion":
        return DiffusionHead(cfg, width, horizon, action_dim)
    if cfg.name == "flow":
        return FlowHead(cfg, width, horizon, action_dim)
    return L1Head(cfg, width, horizon, action_dim)

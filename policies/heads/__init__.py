"""Action heads behind one interface (base.ActionHead); `make_head` picks one by `HeadConfig.name`."""

from __future__ import annotations

from polyact.errors import unknown_name
from polyact.policies.config import HeadConfig
from polyact.policies.heads.adaptive_grid import AdaptiveGridHead
from polyact.policies.heads.base import ActionHead
from polyact.policies.heads.diffusion import DiffusionHead
from polyact.policies.heads.flow import FlowHead
from polyact.policies.heads.l1 import L1Head
from polyact.policies.heads.uniform_bins import UniformBinsHead

__all__ = ["ActionHead", "head_class", "make_head"]

HEAD_CLASSES: dict[str, type[ActionHead]] = {
    "uniform_bins": UniformBinsHead,
    "adaptive_grid": AdaptiveGridHead,
    "diffusion": DiffusionHead,
    "flow": FlowHead,
    "l1": L1Head,
}


def head_class(name: str) -> type[ActionHead]:
    """The head class called `name`; an unknown name raises with the valid ones."""
    if name not in HEAD_CLASSES:
        raise unknown_name("action head", name, HEAD_CLASSES)
    return HEAD_CLASSES[name]


def make_head(cfg: HeadConfig, width: int, chunk: int, action_dim: int, attention_heads: int) -> ActionHead:
    """The head named by cfg.name for chunks of `chunk` actions of `action_dim` dimensions."""
    cls = head_class(cfg.name)
    if cls is UniformBinsHead:  # its autoregressive decoder is a small transformer of its own
        return cls(cfg, width, chunk, action_dim, attention_heads)
    return cls(cfg, width, chunk, action_dim)

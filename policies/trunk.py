"""The transformer blocks shared by the trunk, the from-scratch ViT and text encoders, and the token decoder.

One pre-LayerNorm block (attention through `scaled_dot_product_attention`, GELU MLP), and the trunk that
runs a stack of them over [instruction, observation, readout] tokens. Observation and instruction
tokens do not attend to the readout tokens (Octo's block-wise mask), so the readouts read the scene
without changing how it is encoded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN x), then x + mlp(LN x)."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0, mlp_ratio: int = 4):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D); attend: bool, True where query i may attend to key j, (T, T) or (B, 1, T, T)."""
        q, k, v = rearrange(self.qkv(self.norm1(x)), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=dropout)
        x = x + self.proj(rearrange(out, "b h t d -> b t (h d)"))
        return x + self.mlp(self.norm2(x))


class Trunk(nn.Module):
    """A stack of blocks over context tokens followed by readout tokens; returns the readouts' outputs."""

    def __init__(self, width: int, depth: int, heads: int, num_readouts: int, dropout: float = 0.0):
        super().__init__()
        self.readouts = nn.Parameter(torch.randn(num_readouts, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(
        self, context: torch.Tensor, context_pad: torch.Tensor, with_context: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """context (B, T, D) and its pad mask (B, T), True = padding -> readout features (B, R, D), and
        with `with_context` the context tokens' outputs (B, T, D) too."""
        b, t, _ = context.shape
        r = self.readouts.shape[0]
        x = torch.cat([context, self.readouts.expand(b, -1, -1)], dim=1)  # (B, T + R, D)
        keys = torch.cat([~context_pad, context_pad.new_ones(b, r)], dim=1)  # (B, T + R), True = real
        is_readout = torch.arange(t + r, device=x.device) >= t
        # context queries see only context keys; readout queries see everything real
        allowed = is_readout[:, None] | ~is_readout[None, :]  # (T + R, T + R)
        attend = (allowed[None] & keys[:, None, :])[:, None]  # (B, 1, T + R, T + R)
        for block in self.blocks:
            x = block(x, attend)
        x = self.norm(x)
        return (x[:, t:], x[:, :t]) if with_context else x[:, t:]

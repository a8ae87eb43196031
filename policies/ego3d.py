"""SpatialVLA's Ego3D position encoding: where each image patch is in 3-D, from depth and intrinsics only.

Source: SpatialVLA/SpatialVLA model/modeling_spatialvla.py (`backproject_patch`,
`Ego3DPositionEmbeddingMLP`). Depth is area-pooled to `points_per_side` x `points_per_side` points per
patch; each point is back-projected `p = K^-1 [u, v, 1]^T * d` at the centre of its pixel region (pixel
(r, c) spans [c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5)). The points stay in the camera
frame: egocentric, no extrinsics, so the encoding means the same on any robot. Points are centred on
(0, 0, 2) m and divided by 2 m, encoded NeRF-style as (p, sin 2^k p, cos 2^k p), k = 0..F-1, and mapped by a
small-init MLP whose output is ADDED to the patch tokens. We add at the trunk width, after the patch
projection; the projection is linear, so this equals adding before it with a re-parameterised MLP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def backproject_patches(
    depth: torch.Tensor, intrinsics: torch.Tensor, grid: tuple[int, int], points_per_side: int
) -> torch.Tensor:
    """Egocentric 3-D points of each patch.

    depth (N, H, W) metres, intrinsics (N, 3, 3) -> (N, gh * gw, points_per_side**2 * 3), camera frame,
    ordered (row, col) over patches and (sub-row, sub-col, xyz) inside a patch as in SpatialVLA.
    """
    n, h, w = depth.shape
    gh, gw = grid
    rows, cols = gh * points_per_side, gw * points_per_side
    pooled = F.interpolate(depth[:, None], size=(rows, cols), mode="area")  # (N, 1, rows, cols)
    v = (torch.arange(rows, dtype=torch.float32, device=depth.device) + 0.5) * (h / rows)
    u = (torch.arange(cols, dtype=torch.float32, device=depth.device) + 0.5) * (w / cols)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    uv1 = torch.stack([uu, vv, torch.ones_like(uu)]).reshape(3, -1)  # (3, rows * cols)
    rays = torch.linalg.inv(intrinsics.float()) @ uv1  # (N, 3, rows * cols)
    points = rays * pooled.reshape(n, 1, -1)
    return rearrange(
        points, "n c (gh sh gw sw) -> n (gh gw) (sh sw c)", gh=gh, sh=points_per_side, gw=gw, sw=points_per_side
    )


class Ego3DEncoding(nn.Module):
    """Back-projected patch points -> NeRF frequency encoding -> small-init MLP, (N, P, width)."""

    def __init__(
        self,
        width: int,
        points_per_side: int,
        frequencies: int,
        center: list[float],
        scale: float,
        max_depth: float = 10.0,
    ):
        super().__init__()
        self.points_per_side, self.max_depth = points_per_side, max_depth
        channels = 3 * points_per_side**2
        self.register_buffer("freq_bands", 2.0 ** torch.arange(frequencies, dtype=torch.float32), persistent=False)
        self.register_buffer(
            "center", torch.tensor(center, dtype=torch.float32).repeat(points_per_side**2), persistent=False
        )
        self.scale = scale
        self.mlp = nn.Sequential(
            nn.Linear(channels * (2 * frequencies + 1), width), nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, width)
        )
        # small weights so that adding the encoding leaves the patch features nearly unchanged at first
        for p in self.mlp.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p, gain=0.01)
        # and a zero output bias: the default bias init, ~1/sqrt(width), is small at SpatialVLA's width 1152
        # but not at ours
        nn.init.zeros_(self.mlp[-1].bias)

    def encode(self, points: torch.Tensor) -> torch.Tensor:
        """(N, P, C) points -> (N, P, C * (2F + 1)) = (p, sin 2^k p, cos 2^k p) per coordinate."""
        p = (points - self.center) / self.scale
        angles = p[..., None] * self.freq_bands  # (N, P, C, F)
        return rearrange(torch.cat([p[..., None], angles.sin(), angles.cos()], -1), "n p c f -> n p (c f)")

    def forward(self, depth: torch.Tensor, intrinsics: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """depth (N, H, W), intrinsics (N, 3, 3) -> (N, gh * gw, width), to be added to the patch tokens."""
        # a renderer's far plane (or inf) is background: clamp it, or its sin/cos would be noise or NaN
        points = backproject_patches(depth.clamp(0.0, self.max_depth), intrinsics, grid, self.points_per_side)
        return self.mlp(self.encode(points))

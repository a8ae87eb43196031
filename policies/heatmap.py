"""Translation from per-camera heatmaps: where the next keyframe is, as a picture, not as three numbers.

Regressing an absolute position from a few pooled tokens lands grasps centimetres off. RVT (Goyal et al.,
2023) instead predicts, for each view, a heatmap over its pixels of where the target projects, and
recovers the 3-D point by scoring candidate points with every view's heatmap. We do the same on the real
cameras (RVT renders virtual orthographic views of the point cloud; we have the cameras' own images and
their intrinsics and extrinsics, so no rendering is needed):

    trunk image tokens (g x g per camera) ── conv decoder, upsampling through the encoder's stage
    features (U-Net skips), then the image itself ──► logits over the heatmap's pixels + one "not in
    view" logit per camera

    training: cross-entropy against a Gaussian (sigma `SIGMA_PIXELS` heatmap pixels) around the target's
              projection, or against "not in view" when it projects outside the image or behind the camera
    inference: every candidate point of a box (the training targets' range) gets the sum over cameras of
              its log-probability (bicubic at its projection, or "not in view"); the best point of a
              coarse grid is refined on finer grids around it. A point that no camera sees cannot be
              placed this way (every such point scores alike): there the head's x, y, z stand

The trunk's image tokens have attended to the instruction, the state and the other cameras, so a view's
heatmap knows which object and which stage the instruction is at. The decoder's weights are shared by
the cameras (the tokens carry a camera embedding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from polyact.policies.vision import _groups

SIGMA_PIXELS = 1.0  # the training target's spread, in heatmap pixels
# metres between candidate points: the whole box on the first grid, then +- one step around the best
SEARCH_STEPS = (0.02, 0.004, 0.001)


def project(points: torch.Tensor, intrinsics: torch.Tensor, extrinsics: torch.Tensor) -> torch.Tensor:
    """World points (N, P, 3), K (N, 3, 3), camera-to-world (N, 4, 4), OpenCV axes -> (N, P, 3): the pixel
    coordinates u, v (pixel (r, c) spans [c, c+1) x [r, r+1)) and the depth along the optical axis."""
    rotation, origin = extrinsics[:, :3, :3], extrinsics[:, :3, 3]
    in_camera = torch.einsum("nji,npj->npi", rotation, points - origin[:, None])  # R^T (p - t)
    z = in_camera[..., 2:3]
    uv = torch.einsum("nij,npj->npi", intrinsics[:, :2, :3], in_camera) / z.clamp(min=1e-6)
    return torch.cat([uv, z], dim=-1)


def in_view(projected: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, P, 3) from `project` -> (N, P) bool: in front of the camera and inside the image."""
    u, v, z = projected.unbind(-1)
    return (z > 1e-3) & (u >= 0) & (u < width) & (v >= 0) & (v < height)


def heatmap_targets(projected: torch.Tensor, image_hw: tuple[int, int], heatmap_hw: tuple[int, int]) -> torch.Tensor:
    """Target distributions (N, hh * hw + 1) for one point per row, projected (N, 3) on an image of
    `image_hw`: a normalised Gaussian around the projection over the heatmap's pixels, or all mass on the
    last entry ("not in view")."""
    (height, width), (hh, hw) = image_hw, heatmap_hw
    scale = projected.new_tensor([hw / width, hh / height])
    centre = projected[:, :2] * scale  # heatmap pixel coordinates
    ys = torch.arange(hh, device=projected.device, dtype=projected.dtype) + 0.5
    xs = torch.arange(hw, device=projected.device, dtype=projected.dtype) + 0.5
    d2 = (xs[None, None, :] - centre[:, None, None, 0]) ** 2 + (ys[None, :, None] - centre[:, None, None, 1]) ** 2
    gauss = torch.exp(-d2 / (2 * SIGMA_PIXELS**2)).flatten(1)  # (N, hh * hw)
    visible = in_view(projected[:, None], height, width)[:, 0]
    gauss = gauss / gauss.sum(1, keepdim=True).clamp(min=1e-12)
    targets = torch.cat([gauss * visible[:, None], (~visible).to(gauss.dtype)[:, None]], dim=1)
    return targets


class HeatmapDecoder(nn.Module):
    """Trunk tokens of one camera (N, g*g, D) + encoder stage features + image -> logits (N, hh*hw + 1)."""

    def __init__(self, width: int, stage_channels: list[int], image_channels: int):
        super().__init__()
        top = stage_channels[-1]
        self.bottom = nn.Conv2d(width, top, 1)
        self.ups = nn.ModuleList()
        prev = top
        for c in reversed(stage_channels):  # finest stage last
            self.ups.append(self._fuse(prev + c, c))
            prev = c
        self.final = self._fuse(prev + image_channels, max(8, prev // 2))
        self.logit = nn.Conv2d(max(8, prev // 2), 1, 1)
        self.outside = nn.Linear(width, 1)

    @staticmethod
    def _fuse(inp: int, out: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(inp, out, 3, padding=1, bias=False), nn.GroupNorm(_groups(out), out), nn.ReLU())

    def forward(self, tokens: torch.Tensor, stages: list[torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        """tokens (N, g*g, D); stages coarse-to-fine order reversed as the encoder gives them (finest first),
        each (N, C_i, h_i, w_i); image (N, C, H, W) -> logits (N, hh*hw + 1), heatmap twice the finest stage."""
        g = int(round(tokens.shape[1] ** 0.5))
        x = self.bottom(rearrange(tokens, "n (h w) d -> n d h w", h=g, w=g))
        for fuse, skip in zip(self.ups, reversed(stages), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = fuse(torch.cat([x, skip], dim=1))
        size = (2 * stages[0].shape[-2], 2 * stages[0].shape[-1])
        x = F.interpolate(x, size=size, mode="nearest")
        x = self.final(torch.cat([x, F.interpolate(image, size=size, mode="area")], dim=1))
        return torch.cat([self.logit(x).flatten(1), self.outside(tokens.mean(1))], dim=1)


def candidate_grid(low: torch.Tensor, high: torch.Tensor, step: float) -> torch.Tensor:
    """Points (P, 3) of a regular grid covering the box [low, high] (both ends included)."""
    bounds = zip(low.tolist(), high.tolist(), strict=True)
    axes = [torch.arange(lo, hi + step / 2, step, device=low.device) for lo, hi in bounds]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def score_points(
    log_probs: torch.Tensor,
    heatmap_hw: tuple[int, int],
    image_hw: tuple[int, int],
    points: torch.Tensor,
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
) -> torch.Tensor:
    """Sum over cameras of each point's log-probability.

    log_probs (B, C, hh*hw + 1) log-softmaxed; points (B, P, 3) world; intrinsics (B, C, 3, 3) and
    extrinsics (B, C, 4, 4) of the images of `image_hw` -> (B, P)."""
    b, cams = log_probs.shape[:2]
    (height, width), (hh, hw) = image_hw, heatmap_hw
    flat = lambda t: rearrange(t, "b c ... -> (b c) ...")  # noqa: E731
    pts = points.repeat_interleave(cams, dim=0)  # (B*C, P, 3)
    projected = project(pts, flat(intrinsics), flat(extrinsics))
    maps = rearrange(flat(log_probs)[:, :-1], "n (h w) -> n 1 h w", h=hh, w=hw)
    grid = torch.stack([2 * projected[..., 0] / width - 1, 2 * projected[..., 1] / height - 1], dim=-1)
    inside = F.grid_sample(maps, grid[:, None], mode="bicubic", padding_mode="border", align_corners=False)
    outside = flat(log_probs)[:, -1:].expand(-1, pts.shape[1])
    scores = torch.where(in_view(projected, height, width), inside[:, 0, 0], outside)
    return rearrange(scores, "(b c) p -> b c p", c=cams).sum(1)


def decode_translation(
    log_probs: torch.Tensor,
    heatmap_hw: tuple[int, int],
    image_hw: tuple[int, int],
    intrinsics: torch.Tensor,
    extrinsics: torch.Tensor,
    box: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The best-scoring world point (B, 3) inside `box` (2, 3), searched on a grid of `SEARCH_STEPS[0]`,
    then on finer grids around the best, and (B,) bool: whether any camera sees it. A point no camera
    sees scores the same as every other such point, so it says nothing about where the target is."""
    b = log_probs.shape[0]
    points = candidate_grid(box[0], box[1], SEARCH_STEPS[0])[None].expand(b, -1, -1)
    for coarse, fine in zip(SEARCH_STEPS, [*SEARCH_STEPS[1:], None], strict=True):
        scores = score_points(log_probs, heatmap_hw, image_hw, points, intrinsics, extrinsics)
        best = points[torch.arange(b), scores.argmax(1)]  # (B, 3)
        if fine is None:
            break
        offsets = candidate_grid(box.new_full((3,), -coarse), box.new_full((3,), coarse), fine)
        points = torch.minimum(torch.maximum(best[:, None] + offsets[None], box[0]), box[1])  # (B, P, 3)
    cams = extrinsics.shape[1]
    flat = lambda t: rearrange(t, "b c ... -> (b c) ...")  # noqa: E731
    projected = project(best.repeat_interleave(cams, dim=0)[:, None], flat(intrinsics), flat(extrinsics))
    seen = rearrange(in_view(projected, *image_hw)[:, 0], "(b c) -> b c", c=cams).any(1)
    return best, seen

"""SpatialVLA's Ego3D position encoding on the VLM's vision tower (policy.vision.depth=true).

SpatialVLA (SpatialVLA/SpatialVLA model/modeling_spatialvla.py) adds the Ego3D encoding of each patch's
back-projected depth points to SigLIP's patch features, before the multi-modal projector. Here the
trunk's Ego3D module (policies/ego3d.py), at the vision tower's width, is added to the tower's
`last_hidden_state` by a forward hook, so PaliGemma's projector and Idefics3's pixel-shuffle connector
both read the encoded features and no family's forward is re-implemented. The hook reads the depth and
intrinsics that `geometry` set for the batch being run, one image per (sample, camera) in the order the
families feed the tower ("(b c)"). The square resize of each camera image maps the whole image onto the
patch grid, so the points are back-projected with the camera's own intrinsics at its own resolution.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from einops import rearrange
from torch import nn

from polyact.errors import ContractError
from polyact.policies.config import VisionConfig
from polyact.policies.ego3d import Ego3DEncoding


class VisionTowerEgo3D(nn.Module):
    """Ego3D encodings added to a vision tower's patch features while `geometry(...)` is active."""

    def __init__(self, v: VisionConfig, tower: nn.Module, vision_config: Any):
        super().__init__()
        self.encoding = Ego3DEncoding(
            int(vision_config.hidden_size),
            v.ego3d_points_per_side,
            v.ego3d_frequencies,
            v.ego3d_center,
            v.ego3d_scale,
            v.ego3d_max_depth,
        )
        side = int(vision_config.image_size) // int(vision_config.patch_size)
        self.grid = (side, side)
        self._geometry: tuple[torch.Tensor, torch.Tensor] | None = None
        tower.register_forward_hook(self._add)

    @contextmanager
    def geometry(self, depth: torch.Tensor, intrinsics: torch.Tensor) -> Iterator[None]:
        """depth (B, C, H, W) metres and intrinsics (B, C, 3, 3), cameras in config order, for the forward
        passes run inside the block."""
        self._geometry = (rearrange(depth, "b c h w -> (b c) h w"), rearrange(intrinsics, "b c i j -> (b c) i j"))
        try:
            yield
        finally:
            self._geometry = None

    def _add(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self._geometry is None:
            raise ContractError("the VLM's vision tower ran without depth and intrinsics (vision.depth=true)")
        depth, intrinsics = self._geometry
        features = output.last_hidden_state  # (B * C, patches, width)
        if features.shape[0] != depth.shape[0]:
            raise ContractError(f"the vision tower ran on {features.shape[0]} images, the batch has {depth.shape[0]}")
        output.last_hidden_state = features + self.encoding(depth, intrinsics, self.grid).to(features.dtype)
        return output

"""Image tokens: uint8 channels-last images in, `grid x grid` tokens of the trunk width out, per camera.

Each camera has its own encoder (a small ResNet-ish conv net with a patchify stem and GroupNorm, or a
small ViT, trained from scratch), except a pretrained backbone, which all cameras share (a camera
embedding tells them apart).
The encoder's feature map is merged down to the token grid by concatenating each cell's features
(space-to-depth, no averaging, so positions inside a cell survive) and a linear projection. Optionally
SpatialVLA's Ego3D encoding of the depth image is added to the tokens (ego3d.py).

`RandomShift` is DrQ's augmentation (Kostrikov et al., 2020; facebookresearch/drqv2 `RandomShiftsAug`):
replicate-pad by a few pixels and crop back at a random offset. The policy applies it in training mode
only, with one offset per sample and camera shared over the history, to depth too, and moves the
principal point of K with the crop so that Ego3D stays consistent.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from polyact.errors import ConfigError
from polyact.policies.config import PolicyConfig
from polyact.policies.ego3d import Ego3DEncoding
from polyact.policies.gravmap import CHANNELS as GRAVMAP_CHANNELS
from polyact.policies.pretrained import PretrainedVision
from polyact.policies.trunk import Block


def _groups(channels: int) -> int:
    return max(1, channels // 16)  # Diffusion Policy's GroupNorm choice


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(channels), channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.GroupNorm(_groups(channels), channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class ConvEncoder(nn.Module):
    """A patchify stem (stride `stem`) to channels[0], then per later width a stride-2 conv; each stage
    ends in a residual block; GroupNorm throughout. (N, in_channels, H, W) -> (N, C, H/stride, W/stride):
    RGB, then any extra channels (the sub-goal maps, gravmap.py).

    The stem makes it cheap on a CPU: at 64x64, stem 4 and [32, 64] cost ~11 MMAC an image, where
    ResNet-style full-resolution stages cost ~70."""

    def __init__(self, channels: list[int], stem: int, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, channels[0], stem, stride=stem, bias=False),
            nn.GroupNorm(_groups(channels[0]), channels[0]),
            nn.ReLU(),
            ResBlock(channels[0]),
        ]
        for prev, c in zip(channels[:-1], channels[1:], strict=True):
            layers += [
                nn.Conv2d(prev, c, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(_groups(c), c),
                nn.ReLU(),
                ResBlock(c),
            ]
        self.net = nn.Sequential(*layers)
        self.out_channels = channels[-1]
        self.stride = stem * 2 ** (len(channels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's output, finest first (the heatmap decoder's skips); the last is `forward`'s."""
        outs = []
        for i, layer in enumerate(self.net):  # every stage ends in the fourth of its four modules
            x = layer(x)
            if i % 4 == 3:
                outs.append(x)
        return outs


def sincos_2d(h: int, w: int, width: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding (MAE), (h * w, width): works at any image size."""
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    out = [f(c.reshape(-1, 1) * omega) for c in (ys, xs) for f in (torch.sin, torch.cos)]
    emb = torch.cat(out, dim=1)
    return F.pad(emb, (0, width - emb.shape[1]))


class ViTEncoder(nn.Module):
    """A small ViT from scratch: patchify, fixed 2-D position embedding, blocks -> (N, width, gh, gw)."""

    def __init__(self, width: int, depth: int, heads: int, patch_size: int):
        super().__init__()
        self.patch = nn.Conv2d(3, width, patch_size, stride=patch_size)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out_channels = width
        self.stride = patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x)  # (N, D, gh, gw)
        gh, gw = x.shape[-2:]
        tokens = rearrange(x, "n d h w -> n (h w) d") + sincos_2d(gh, gw, x.shape[1]).to(x)
        for block in self.blocks:
            tokens = block(tokens)
        return rearrange(self.norm(tokens), "n (h w) d -> n d h w", h=gh, w=gw)


def cropped_intrinsics(intrinsics: torch.Tensor, crop: Sequence[int]) -> torch.Tensor:
    """K (..., 3, 3) of the `crop` = (top, left, height, width) of an image: pixel (r, c) of the crop is
    (r + top, c + left) of the image, so only the principal point moves."""
    k = intrinsics.clone()
    k[..., 0, 2] -= crop[1]
    k[..., 1, 2] -= crop[0]
    return k


def sample_shifts(n: int, pad: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Random crop offsets (n, 2) = (dx, dy) in [0, 2 pad] of a padded image."""
    return torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=device)


class RandomShift(nn.Module):
    """DrQ random shift: replicate-pad by `pad` pixels, crop back to (H, W) at offsets (dx, dy)."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """images (N, C, H, W), shifts (N, 2) from `sample_shifts` -> shifted (N, C, H, W)."""
        n, _, h, w = images.shape
        padded = F.pad(images, (self.pad,) * 4, mode="replicate")
        rows = torch.arange(h, device=images.device)[None] + shifts[:, 1:2]  # (N, H)
        cols = torch.arange(w, device=images.device)[None] + shifts[:, 0:1]  # (N, W)
        batch = torch.arange(n, device=images.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
        return out.permute(0, 3, 1, 2)

    def shift_intrinsics(self, intrinsics: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """K of the cropped image: pixel (r, c) of the crop is (r + dy - pad, c + dx - pad) of the original."""
        k = intrinsics.clone()
        k[:, 0, 2] -= shifts[:, 0] - self.pad
        k[:, 1, 2] -= shifts[:, 1] - self.pad
        return k


class CameraTokens(nn.Module):
    """All cameras' image tokens: encoders, cell merge + projection, position/camera embeddings, Ego3D."""

    def __init__(self, cfg: PolicyConfig, load_pretrained_weights: bool = True):
        super().__init__()
        v = cfg.vision
        self.cameras = list(cfg.cameras)
        self.grid = v.grid
        self.pretrained = v.encoder == "pretrained"
        self.frozen = self.pretrained and v.freeze
        if self.pretrained:
            self.backbone = PretrainedVision(v.pretrained_path, load_weights=load_pretrained_weights)
            if v.freeze:
                self.backbone.requires_grad_(False)
                self.backbone.eval()
            out_channels, feature_hw = self.backbone.hidden, self.backbone.grid
        else:
            self.encoders = nn.ModuleDict({cam: self._scratch_encoder(cfg) for cam in self.cameras})
            enc = next(iter(self.encoders.values()))
            out_channels = enc.out_channels
            height, width = cfg.encoded_size()
            if height % enc.stride or width % enc.stride:
                raise ConfigError(
                    f"images of {height}x{width} (after vision.crop, if any) are not divisible by the encoder "
                    f"stride {enc.stride}"
                )
            feature_hw = (height // enc.stride, width // enc.stride)
        if feature_hw[0] % v.grid or feature_hw[1] % v.grid:
            raise ConfigError(
                f"the encoder's {feature_hw[0]}x{feature_hw[1]} feature map cannot be merged to a {v.grid}x{v.grid} "
                "token grid; change vision.grid or the image size"
            )
        self.cell = (feature_hw[0] // v.grid, feature_hw[1] // v.grid)
        self.proj = nn.ModuleDict(
            {cam: nn.Linear(out_channels * self.cell[0] * self.cell[1], cfg.width) for cam in self.cameras}
        )
        self.pos = nn.Parameter(torch.randn(v.grid * v.grid, cfg.width) * 0.02)
        self.camera_embed = nn.Parameter(torch.randn(len(self.cameras), cfg.width) * 0.02)
        self.ego3d = None
        if v.depth:
            self.ego3d = nn.ModuleDict(
                {
                    cam: Ego3DEncoding(
                        cfg.width,
                        v.ego3d_points_per_side,
                        v.ego3d_frequencies,
                        v.ego3d_center,
                        v.ego3d_scale,
                        v.ego3d_max_depth,
                    )
                    for cam in self.cameras
                }
            )

    def train(self, mode: bool = True) -> CameraTokens:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # frozen: no dropout or other train-mode behaviour
        return self

    @staticmethod
    def _scratch_encoder(cfg: PolicyConfig) -> nn.Module:
        v = cfg.vision
        if v.encoder == "conv":
            extra = GRAVMAP_CHANNELS if cfg.subgoal_conditioning == "gravmap" else 0
            return ConvEncoder(v.channels, v.stem, 3 + extra)
        return ViTEncoder(cfg.width, v.vit_depth, cfg.attention_heads, v.patch_size)

    def forward(
        self,
        cam: str,
        images: torch.Tensor,
        depth: torch.Tensor | None,
        intrinsics: torch.Tensor | None,
        stages: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """One camera. images: float (N, 3 or 3 + sub-goal maps, H, W), normalised for scratch encoders, in [0, 1] for a
        pretrained one; depth (N, H, W) and intrinsics (N, 3, 3) when Ego3D is on -> (N, grid^2, width).
        A conv encoder appends its stage outputs (finest first) to `stages` when one is given."""
        if stages is not None:
            stages.extend(self.encoders[cam].stages(images))
            features = stages[-1]
        else:
            features = self.backbone(images) if self.pretrained else self.encoders[cam](images)  # (N, C, fh, fw)
        ch, cw = self.cell
        cells = rearrange(features, "n c (gh ch) (gw cw) -> n (gh gw) (ch cw c)", ch=ch, cw=cw)
        tokens = self.proj[cam](cells) + self.pos + self.camera_embed[self.cameras.index(cam)]
        if self.ego3d is not None:
            tokens = tokens + self.ego3d[cam](depth, intrinsics, (self.grid, self.grid))
        return tokens

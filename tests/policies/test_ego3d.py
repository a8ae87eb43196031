"""Ego3D: back-projected patch points against hand-computed ones, and the encoding's shape and scale."""

from __future__ import annotations

import torch

from polyact.policies.ego3d import Ego3DEncoding, backproject_patches

# fx = 2, fy = 4, cx = 2, cy = 2
K = torch.tensor([[2.0, 0.0, 2.0], [0.0, 4.0, 2.0], [0.0, 0.0, 1.0]])
DEPTH = torch.tensor(
    [
        [1.0, 1.0, 2.0, 4.0],
        [1.0, 1.0, 2.0, 4.0],
        [3.0, 3.0, 0.5, 0.5],
        [3.0, 5.0, 0.5, 0.5],
    ]
)


def point(u: float, v: float, d: float) -> list[float]:
    """K^-1 [u, v, 1] d, by hand: x = (u - cx) d / fx, y = (v - cy) d / fy, z = d."""
    return [(u - 2.0) * d / 2.0, (v - 2.0) * d / 4.0, d]


def test_one_point_per_patch_uses_mean_depth_at_patch_centre():
    pts = backproject_patches(DEPTH[None], K[None], (2, 2), points_per_side=1)
    assert pts.shape == (1, 4, 3)
    # patch (row, col) covers pixels [2 row, 2 row + 2) x [2 col, 2 col + 2); its centre is (2 col + 1, 2 row + 1)
    expected = [point(1, 1, 1.0), point(3, 1, 3.0), point(1, 3, 3.5), point(3, 3, 0.5)]
    assert torch.allclose(pts[0], torch.tensor(expected))


def test_sub_patch_points_are_pixel_centres_in_row_col_xyz_order():
    pts = backproject_patches(DEPTH[None], K[None], (2, 2), points_per_side=2)
    assert pts.shape == (1, 4, 12)
    # patch 1 (top right): pixels (r, c) = (0, 2), (0, 3), (1, 2), (1, 3), centres at (c + 0.5, r + 0.5)
    expected = point(2.5, 0.5, 2.0) + point(3.5, 0.5, 4.0) + point(2.5, 1.5, 2.0) + point(3.5, 1.5, 4.0)
    assert torch.allclose(pts[0, 1], torch.tensor(expected))
    # patch 2 (bottom left) holds the 5 m pixel (3, 1)
    assert torch.allclose(pts[0, 2, 9:12], torch.tensor(point(1.5, 3.5, 5.0)))


def test_encoding_is_nerf_style_and_starts_small():
    torch.manual_seed(0)
    enc = Ego3DEncoding(width=16, points_per_side=1, frequencies=8, center=[0.0, 0.0, 2.0], scale=2.0)
    p = torch.tensor([[[0.5, -1.0, 4.0]]])
    e = enc.encode(p)
    assert e.shape == (1, 1, 3 * 17)
    n = torch.tensor([0.25, -0.5, 1.0])  # (p - (0, 0, 2)) / 2
    assert torch.allclose(
        e[0, 0, :17],
        torch.cat([n[:1], torch.sin(n[0] * 2.0 ** torch.arange(8)), torch.cos(n[0] * 2.0 ** torch.arange(8))]),
    )
    with torch.no_grad():
        out = enc(DEPTH[None], K[None], (2, 2))
    assert out.shape == (1, 4, 16)
    assert float(out.abs().max()) < 0.1  # small init: adding it barely moves the patch tokens at first


def test_infinite_depth_is_clamped_to_background():
    enc = Ego3DEncoding(width=8, points_per_side=1, frequencies=4, center=[0.0, 0.0, 2.0], scale=2.0, max_depth=10.0)
    depth = DEPTH.clone()
    depth[0, 0] = float("inf")
    with torch.no_grad():
        out = enc(depth[None], K[None], (2, 2))
    assert bool(torch.isfinite(out).all())

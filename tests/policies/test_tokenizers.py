"""Action tokenizers: uniform bins (OpenVLA) and adaptive grids (SpatialVLA), including re-discretisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from polyact.policies import HeadConfig
from polyact.policies.heads.adaptive_grid import (
    QUANTITIES,
    RANGES,
    AdaptiveGrid,
    AdaptiveGridHead,
    cartesian_to_spherical,
    gaussian_edges,
    interpolate_grid,
    spherical_to_cartesian,
)
from polyact.policies.heads.uniform_bins import decode_bins, encode_bins
from polyact.policies.normalize import Normalizer

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
inside = st.floats(-1.0, 1.0, allow_nan=False, width=32)


# --- uniform bins ------------------------------------------------------------------------------------
@settings(deadline=None)
@given(arrays(np.float32, (5, 7), elements=inside), st.sampled_from([2, 7, 256]))
def test_uniform_bins_round_trip_within_half_a_bin(x, n):
    t = torch.from_numpy(x)
    err = (decode_bins(encode_bins(t, n), n) - t).abs()
    assert float(err.max()) <= 1.0 / n + 1e-6  # half of the bin width 2/n


@settings(deadline=None)
@given(arrays(np.float32, (4, 3), elements=finite))
def test_uniform_bins_clip_outside_range(x):
    t = torch.from_numpy(x)
    idx = encode_bins(t, 256)
    assert torch.equal(idx, encode_bins(t.clamp(-1, 1), 256))
    assert int(idx.min()) >= 0 and int(idx.max()) <= 255


def test_uniform_bins_edges():
    assert encode_bins(torch.tensor([-1.0, -0.999, 0.0, 0.999, 1.0]), 256).tolist() == [0, 0, 128, 255, 255]
    assert decode_bins(torch.tensor([0, 255]), 256).tolist() == pytest.approx([-1 + 1 / 256, 1 - 1 / 256])


def _action_normalizer(q01, q99) -> Normalizer:
    n = Normalizer({"action": "q01_q99"}, {"action": (len(q01),)})
    n.load_statistics({"action": {"q01": np.asarray(q01), "q99": np.asarray(q99)}})
    return n


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, (6, 3), elements=st.floats(0.0, 1.0, width=32)))
def test_raw_actions_round_trip_through_normaliser_and_bins(u):
    q01, q99 = np.array([-2.0, 0.0, 5.0]), np.array([2.0, 0.5, 5.0])  # the last dimension is constant
    norm = _action_normalizer(q01, q99)
    raw = torch.from_numpy(q01 + u * (q99 - q01)).float()
    back = norm.unnormalize("action", decode_bins(encode_bins(norm.normalize("action", raw), 256), 256))
    half_bin = torch.tensor((q99 - q01) / 256, dtype=torch.float32)
    assert bool(((back - raw).abs() <= half_bin + 1e-4).all())


def test_q01_equal_q99_maps_to_zero_and_outside_clips():
    norm = _action_normalizer([-1.0, 3.0], [1.0, 3.0])
    y = norm.normalize("action", torch.tensor([[5.0, 7.0], [-5.0, 3.0]]))
    assert y.tolist() == [[1.0, 0.0], [-1.0, 0.0]]


# --- adaptive grid -----------------------------------------------------------------------------------
def _grid(action_dim: int, seed: int = 0, scale: float = 0.4, **cfg) -> AdaptiveGrid:
    grid = AdaptiveGrid(HeadConfig(name="adaptive_grid", **cfg), action_dim)
    g = torch.Generator().manual_seed(seed)
    grid.fit((torch.randn(2000, action_dim, generator=g) * scale).clamp(-1, 1))
    return grid


GRIDS = {4: _grid(4), 7: _grid(7)}


def test_gaussian_edges_are_equal_probability():
    mu, sigma, lo, hi, n = 0.3, 0.2, -1.0, 1.0, 8
    edges = gaussian_edges(mu, sigma, lo, hi, n)
    assert edges[0] == lo and edges[-1] == hi and bool((edges[1:] > edges[:-1]).all())
    mass = torch.diff(torch.special.ndtr((edges - mu) / sigma))
    assert torch.allclose(mass, mass.mean().expand_as(mass), atol=1e-9)


def test_grid_sizes_default_to_spatialvla():
    grid = AdaptiveGrid(HeadConfig(name="adaptive_grid"), 7)
    assert [grid.vocab(p) for p in grid.parts] == [16 * 32 * 8, 16**3, 2]


@pytest.mark.parametrize("action_dim", [4, 7])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_grid_round_trip_within_half_a_bin(action_dim, data):
    grid = GRIDS[action_dim]
    a = torch.from_numpy(data.draw(arrays(np.float32, (8, action_dim), elements=inside)))
    tokens = grid.encode(a)
    assert tokens.shape == (8, 2 if action_dim == 4 else 3)
    q = grid.quantities(a)
    idx = grid.split(tokens)
    centre = grid.values(idx)
    for i, name in enumerate(QUANTITIES[:3] if action_dim == 4 else QUANTITIES):
        e = grid.edges(name)
        half = 0.5 * (e[idx[:, i] + 1] - e[idx[:, i]])
        assert bool(((q[:, i] - centre[:, i]).abs() <= half + 1e-5).all()), name
    decoded = grid.decode(tokens)
    assert decoded.shape == a.shape
    if action_dim == 7:  # rotation decodes to the bin centres
        assert torch.allclose(decoded[:, 3:6], centre[:, 3:6])
    assert set(decoded[:, -1].tolist()) <= {-1.0, 1.0}
    assert torch.equal(decoded[:, -1], torch.where(a[:, -1] >= 0, 1.0, -1.0))
    # translation decodes to the Cartesian point of the bin centre, clipped to the cube
    assert torch.allclose(decoded[:, :3], spherical_to_cartesian(centre[:, :3]).clamp(-1, 1))


@pytest.mark.parametrize("action_dim", [4, 7])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_grid_clips_outside_range(action_dim, data):
    grid = GRIDS[action_dim]
    a = torch.from_numpy(data.draw(arrays(np.float32, (6, action_dim), elements=finite)))
    assert torch.equal(grid.encode(a), grid.encode(a.clamp(-1, 1)))


def test_spherical_round_trip_and_ranges():
    xyz = torch.rand(1000, 3) * 2 - 1
    tpr = cartesian_to_spherical(xyz)
    assert torch.allclose(spherical_to_cartesian(tpr), xyz, atol=1e-5)
    for i, name in enumerate(("theta", "phi", "r")):
        lo, hi = RANGES[name]
        assert float(tpr[:, i].min()) >= lo and float(tpr[:, i].max()) <= hi + 1e-6


def test_unfitted_grid_raises():
    grid = AdaptiveGrid(HeadConfig(name="adaptive_grid"), 4)
    with pytest.raises(ValueError, match="not fitted"):
        grid.encode(torch.zeros(1, 4))


def test_grid_rejects_other_action_layouts():
    with pytest.raises(ValueError, match="4-D .* and 7-D"):
        AdaptiveGrid(HeadConfig(name="adaptive_grid"), 6)


# --- re-discretisation -------------------------------------------------------------------------------
def _head(action_dim: int) -> AdaptiveGridHead:
    torch.manual_seed(0)
    cfg = HeadConfig(name="adaptive_grid", grid_translation=[4, 6, 3], grid_rotation=[3, 4, 2], grid_gripper=2)
    return AdaptiveGridHead(cfg, width=8, chunk=2, action_dim=action_dim)


@pytest.mark.parametrize("action_dim", [4, 7])
def test_refit_with_same_statistics_keeps_embeddings(action_dim):
    head = _head(action_dim)
    samples = (torch.randn(500, action_dim, generator=torch.Generator().manual_seed(1)) * 0.3).clamp(-1, 1)
    head.grid.fit(samples)
    before = {p: e.detach().clone() for p, e in head.embed.items()}
    head.fit(samples, first=False)
    for part in head.parts:
        assert torch.equal(head.embed[part], before[part]), part


def test_interpolation_reproduces_values_at_old_centres():
    g = torch.Generator().manual_seed(0)
    old = [torch.sort(torch.rand(n, generator=g, dtype=torch.float64))[0] * 0.8 + 0.1 for n in (3, 4, 2)]
    values = torch.randn(3, 4, 2, 5, generator=g, dtype=torch.float64)
    # the new axes contain every old centre plus other points
    new = [torch.sort(torch.cat([o, torch.rand(2, generator=g, dtype=torch.float64)]))[0] for o in old]
    out = interpolate_grid(values, old, new, [(0.0, 1.0)] * 3)
    pos = [torch.searchsorted(n, o) for n, o in zip(new, old, strict=True)]
    assert torch.equal(out[pos[0]][:, pos[1]][:, :, pos[2]], values)


@pytest.mark.parametrize("action_dim", [4, 7])
def test_refit_moves_embeddings_to_new_centres_linearly(action_dim):
    """Embeddings that are a linear function of the old bin centres stay that function at the new
    centres (inside the old grid), and bins whose centre did not move keep their embedding."""
    head = _head(action_dim)
    g = torch.Generator().manual_seed(2)
    head.grid.fit((torch.randn(800, action_dim, generator=g) * 0.3).clamp(-1, 1))
    weight = torch.randn(3, 8, generator=g, dtype=torch.float64)
    old_axes = {}
    for part in head.parts[:-1]:
        axes = head.grid.axis_centres(part)
        old_axes[part] = axes
        mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        head.embed[part].data.copy_((mesh @ weight).float())
    gripper = head.embed["gripper"].detach().clone()
    head.fit((torch.randn(800, action_dim, generator=g) * 0.5 + 0.1).clamp(-1, 1), first=False)
    for part in head.parts[:-1]:
        new_axes = head.grid.axis_centres(part)
        assert not all(torch.equal(a, b) for a, b in zip(new_axes, old_axes[part], strict=True))
        inside_old = [((n >= o[0]) & (n <= o[-1])) for n, o in zip(new_axes, old_axes[part], strict=True)]
        mask = (inside_old[0][:, None, None] & inside_old[1][None, :, None] & inside_old[2][None, None, :]).reshape(-1)
        mesh = torch.stack(torch.meshgrid(*new_axes, indexing="ij"), -1).reshape(-1, 3)
        expected = (mesh @ weight).float()
        assert bool(mask.any())
        assert torch.allclose(head.embed[part][mask], expected[mask], atol=1e-4)
    assert torch.equal(head.embed["gripper"], gripper)


def test_theta_range_is_half_turn():
    assert RANGES["theta"] == (0.0, math.pi) and RANGES["r"] == (0.0, math.sqrt(3.0))

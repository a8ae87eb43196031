"""SpatialVLA adaptive action grids: equal-probability bins fitted to the data, one joint token per part.

Source: SpatialVLA/SpatialVLA model/action_tokenizer.py (`SpatialActionTokenizer`, `get_bin_policy`,
`spatial_embedding_adaption`). On q01/q99-normalised actions:

- translation (x, y, z) -> spherical (theta = atan2(sqrt(x^2+y^2), z) in [0, pi], phi = atan2(y, x) in
  [-pi, pi], r in [0, sqrt 3]); rotation (roll, pitch, yaw) stays in [-1, 1];
- each of the six quantities gets one Gaussian (mean, std floored at `min_sigma`) and bin edges
  `ppf(linspace(cdf(lo), cdf(hi), n + 1))`, clipped to the range: equal probability per bin;
- a step is 3 tokens: one joint translation token (theta x phi x r bins, 16x32x8 = 4096 in SpatialVLA),
  one joint rotation token (16^3), one gripper token. Decoding takes bin centres, converts back to
  Cartesian and clips to [-1, 1] (the sphere circumscribes the cube).
- 4-D actions (Meta-World: x, y, z, gripper) have no rotation, so a step is 2 tokens: translation and
  gripper. Only 4-D and 7-D layouts are supported.

The gripper is not binned by a Gaussian: SpatialVLA thresholds it into open/closed. On our [-1, 1]
scale we use `grid_gripper` evenly spaced levels including -1 and 1 and pick the nearest, ties upwards
(2 levels: >= 0 is 1, below is -1, as SpatialVLA's `>= 0.5` on its [0, 1] scale).

Each token's logits are the dot products of a projected readout with that part's token embeddings.
Re-discretisation for a new dataset (`refit`) refits the Gaussians and moves the translation and
rotation embeddings from the old 3-D grid of bin centres to the new one by linear interpolation along
each axis (trilinear), with the old grid padded by the range ends holding the edge embeddings, as in
`spatial_embedding_adaption`. (SpatialVLA builds that grid with `np.meshgrid`'s default "xy" indexing,
which swaps the first two axes against the embedding layout when their bin counts differ; we index
"ij" so each embedding keeps its own bin centre.) The fitted edges are buffers: saved with the weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from polyact.errors import ConfigError
from polyact.policies.config import HeadConfig
from polyact.policies.heads.base import ActionHead, masked_mean, token_entropy, zero_padded
from polyact.policies.heads.uniform_bins import pick_tokens

QUANTITIES = ("theta", "phi", "r", "roll", "pitch", "yaw")
RANGES = {
    "theta": (0.0, math.pi),
    "phi": (-math.pi, math.pi),
    "r": (0.0, math.sqrt(3.0)),
    "roll": (-1.0, 1.0),
    "pitch": (-1.0, 1.0),
    "yaw": (-1.0, 1.0),
}


def cartesian_to_spherical(xyz: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3) = (theta, phi, r)."""
    x, y, z = xyz.unbind(-1)
    return torch.stack([torch.atan2(torch.hypot(x, y), z), torch.atan2(y, x), xyz.norm(dim=-1)], dim=-1)


def spherical_to_cartesian(tpr: torch.Tensor) -> torch.Tensor:
    theta, phi, r = tpr.unbind(-1)
    return torch.stack([r * theta.sin() * phi.cos(), r * theta.sin() * phi.sin(), r * theta.cos()], dim=-1)


def gaussian_edges(mu: float, sigma: float, lo: float, hi: float, n: int) -> torch.Tensor:
    """n equal-probability bins of N(mu, sigma) restricted to [lo, hi]: (n + 1,) edges, float64."""
    cdf = torch.special.ndtr((torch.tensor([lo, hi], dtype=torch.float64) - mu) / sigma)
    probs = torch.linspace(float(cdf[0]), float(cdf[1]), n + 1, dtype=torch.float64)
    edges = (mu + sigma * torch.special.ndtri(probs)).clamp(lo, hi)
    edges[0], edges[-1] = lo, hi
    return edges


def centres(edges: torch.Tensor) -> torch.Tensor:
    return 0.5 * (edges[:-1] + edges[1:])


def interpolate_grid(
    values: torch.Tensor, old: list[torch.Tensor], new: list[torch.Tensor], ranges: list[tuple[float, float]]
) -> torch.Tensor:
    """Trilinear interpolation of values (n1, n2, n3, E) given at the old axis coordinates to the new
    ones, (m1, m2, m3, E). Each axis is padded with its range ends carrying the edge values."""
    out = values.double()
    for axis, (o, n, (lo, hi)) in enumerate(zip(old, new, ranges, strict=True)):
        coords = torch.cat([o.new_tensor([lo]), o.double(), o.new_tensor([hi])])
        out = torch.cat([out.narrow(axis, 0, 1), out, out.narrow(axis, out.shape[axis] - 1, 1)], dim=axis)
        x = n.double()
        i = (torch.searchsorted(coords, x, right=True) - 1).clamp(0, len(coords) - 2)
        t = ((x - coords[i]) / (coords[i + 1] - coords[i])).clamp(0, 1)
        shape = [1] * out.dim()
        shape[axis] = -1
        t = t.reshape(shape)
        out = out.index_select(axis, i) * (1 - t) + out.index_select(axis, i + 1) * t
    return out.to(values.dtype)


class AdaptiveGrid(nn.Module):
    """The fitted bins: encode normalised actions (..., A) to tokens (..., T) and decode them back."""

    def __init__(self, cfg: HeadConfig, action_dim: int):
        super().__init__()
        if action_dim not in (4, 7):
            raise ConfigError(
                f"adaptive_grid supports 4-D (x, y, z, gripper) and 7-D (x, y, z, roll, pitch, yaw, gripper) "
                f"actions, got {action_dim}-D; use uniform_bins for other layouts"
            )
        self.rotation = action_dim == 7
        self.counts = dict(zip(QUANTITIES, [*cfg.grid_translation, *cfg.grid_rotation], strict=True))
        self.gripper_levels = cfg.grid_gripper
        self.min_sigma = cfg.min_sigma
        for q in QUANTITIES:
            self.register_buffer(f"edges_{q}", torch.zeros(self.counts[q] + 1))
        self.register_buffer("gaussians", torch.zeros(len(QUANTITIES), 2))  # (mu, sigma) per quantity
        self.register_buffer("fitted", torch.zeros(()))

    @property
    def parts(self) -> list[str]:
        return ["translation", "rotation", "gripper"] if self.rotation else ["translation", "gripper"]

    def vocab(self, part: str) -> int:
        if part == "gripper":
            return self.gripper_levels
        names = QUANTITIES[:3] if part == "translation" else QUANTITIES[3:]
        return math.prod(self.counts[q] for q in names)

    def edges(self, q: str) -> torch.Tensor:
        return getattr(self, f"edges_{q}")

    def axis_centres(self, part: str) -> list[torch.Tensor]:
        names = QUANTITIES[:3] if part == "translation" else QUANTITIES[3:]
        return [centres(self.edges(q).double()) for q in names]

    def quantities(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised actions (..., A) -> the six gridded quantities (..., 6) (rotation zeros for 4-D)."""
        a = actions.clamp(-1, 1)
        tpr = cartesian_to_spherical(a[..., :3])
        rpy = a[..., 3:6] if self.rotation else torch.zeros_like(tpr)
        return torch.cat([tpr, rpy], dim=-1)

    @torch.no_grad()
    def fit(self, actions: torch.Tensor) -> None:
        """Fit the Gaussians and bin edges to normalised actions (N, A)."""
        q = self.quantities(actions.double().reshape(-1, actions.shape[-1]))
        for i, name in enumerate(QUANTITIES):
            mu, sigma = q[:, i].mean().item(), max(q[:, i].std(unbiased=False).item(), self.min_sigma)
            edges = gaussian_edges(mu, sigma, *RANGES[name], self.counts[name])
            if not bool((edges[1:] > edges[:-1]).all()):
                raise ConfigError(
                    f"adaptive grid for {name!r} (mu={mu:.4g}, sigma={sigma:.4g}) has empty bins; raise "
                    "head.min_sigma or use fewer bins"
                )
            self.edges(name).copy_(edges)
            self.gaussians[i] = torch.tensor([mu, sigma])
        self.fitted.fill_(1.0)

    def check_fitted(self) -> None:
        if not bool(self.fitted):
            raise ConfigError(
                "the adaptive action grid is not fitted: build the policy with action samples "
                "(build_policy(..., action_samples=...)) or load it from a checkpoint"
            )

    def indices(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised actions (..., A) -> the bin of each of the six quantities (..., 6)."""
        self.check_fitted()
        q = self.quantities(actions)
        return torch.stack(
            [
                torch.searchsorted(self.edges(name)[1:-1].to(q.dtype).contiguous(), q[..., i].contiguous(), right=True)
                for i, name in enumerate(QUANTITIES)
            ],
            dim=-1,
        )

    def values(self, indices: torch.Tensor) -> torch.Tensor:
        """Bins (..., 6) -> their centres (..., 6)."""
        return torch.stack(
            [
                0.5 * (self.edges(n)[indices[..., i]] + self.edges(n)[indices[..., i] + 1])
                for i, n in enumerate(QUANTITIES)
            ],
            dim=-1,
        )

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised actions (..., A) -> tokens (..., T): part-local ids (translation, [rotation,] gripper)."""
        i = self.indices(actions)
        c = [self.counts[q] for q in QUANTITIES]
        tokens = [(i[..., 0] * c[1] + i[..., 1]) * c[2] + i[..., 2]]
        if self.rotation:
            tokens.append((i[..., 3] * c[4] + i[..., 4]) * c[5] + i[..., 5])
        g = self.gripper_levels - 1
        midpoints = -1.0 + (2 * torch.arange(g, device=actions.device, dtype=actions.dtype) + 1) / g
        tokens.append(torch.searchsorted(midpoints, actions[..., -1].contiguous(), right=True))  # ties upwards
        return torch.stack(tokens, dim=-1)

    def split(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (..., T) -> the bin of each quantity (..., 6) (rotation bins 0 for 4-D)."""
        c = [self.counts[q] for q in QUANTITIES]
        t = tokens[..., 0]
        parts = [t // (c[1] * c[2]), (t // c[2]) % c[1], t % c[2]]
        r = tokens[..., 1] if self.rotation else torch.zeros_like(t)
        parts += [r // (c[4] * c[5]), (r // c[5]) % c[4], r % c[5]]
        return torch.stack(parts, dim=-1)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (..., T) -> normalised actions (..., A) at bin centres (gripper at its level)."""
        self.check_fitted()
        v = self.values(self.split(tokens))
        parts = [spherical_to_cartesian(v[..., :3]).clamp(-1, 1)]
        if self.rotation:
            parts.append(v[..., 3:])
        g = self.gripper_levels - 1
        parts.append((tokens[..., -1].float() * (2.0 / g) - 1.0)[..., None])
        return torch.cat(parts, dim=-1)


class AdaptiveGridHead(ActionHead):
    fits_to_data = True  # the grid's bins follow the dataset's action distribution
    predicts_distribution = True

    def __init__(self, cfg: HeadConfig, width: int, chunk: int, action_dim: int):
        super().__init__(cfg, width, chunk, action_dim)
        self.grid = AdaptiveGrid(cfg, action_dim)
        self.parts = self.grid.parts
        self.num_readouts = chunk * len(self.parts)
        self.query = nn.ModuleDict({p: nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width)) for p in self.parts})
        self.embed = nn.ParameterDict(
            {p: nn.Parameter(torch.randn(self.grid.vocab(p), width) * 0.02) for p in self.parts}
        )

    def _logits(self, readout: torch.Tensor) -> list[torch.Tensor]:
        """readout (B, H*T, D) -> per part logits (B, H, V_part)."""
        per_step = rearrange(readout, "b (h t) d -> t b h d", t=len(self.parts))
        return [self.query[p](x) @ self.embed[p].T for p, x in zip(self.parts, per_step, strict=True)]

    def loss(self, readout, actions, pad, generator=None):
        targets = self.grid.encode(zero_padded(actions, pad))  # (B, H, T)
        metrics: dict[str, torch.Tensor] = {}
        total = readout.new_zeros(())
        for i, (part, logits) in enumerate(zip(self.parts, self._logits(readout), strict=True)):
            ce = F.cross_entropy(rearrange(logits, "b h v -> b v h"), targets[..., i], reduction="none")  # (B, H)
            total = total + masked_mean(ce, pad)
            with torch.no_grad():
                metrics[f"accuracy_{part}"] = masked_mean((logits.argmax(-1) == targets[..., i]).float(), pad).detach()
        loss = total / len(self.parts)
        return loss, {"loss": loss.detach(), **metrics}

    def sample(self, readout, generator=None, noise=None):
        tokens = [pick_tokens(logits, self.cfg.temperature, generator) for logits in self._logits(readout)]
        return self.grid.decode(torch.stack(tokens, dim=-1)).to(readout.dtype)

    def entropy(self, readout):
        return torch.stack([token_entropy(logits) for logits in self._logits(readout)], dim=-1).flatten(1).mean(1)

    @torch.no_grad()
    def fit(self, actions: torch.Tensor, first: bool = True) -> None:
        """Fit the grid to normalised actions (N, A). For a trained head (`first` False) this re-discretises
        on a new dataset, moving the translation and rotation token embeddings from the old grid of bin
        centres to the new one (SpatialVLA's adaptation)."""
        if first:
            self.grid.fit(actions)
            return
        old = {p: self.grid.axis_centres(p) for p in self.parts if p != "gripper"}
        self.grid.fit(actions)
        for part, old_axes in old.items():
            names = QUANTITIES[:3] if part == "translation" else QUANTITIES[3:]
            counts = [self.grid.counts[q] for q in names]
            values = self.embed[part].data.reshape(*counts, -1)  # (n1, n2, n3, D)
            moved = interpolate_grid(values, old_axes, self.grid.axis_centres(part), [RANGES[q] for q in names])
            self.embed[part].data.copy_(moved.reshape(-1, values.shape[-1]))

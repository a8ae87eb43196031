"""Every action head behind the one interface: shapes, finite losses, the pad mask, schedules."""

from __future__ import annotations

import math

import pytest
import torch

from polyact.policies import HeadConfig
from polyact.policies.heads import make_head
from polyact.policies.heads.diffusion import ddim_timesteps, squaredcos_cap_v2
from polyact.policies.heads.flow import sample_time

B, H, D = 3, 4, 16
HEADS = [
    ("uniform_bins", "parallel", 4),
    ("uniform_bins", "autoregressive", 4),
    ("adaptive_grid", "parallel", 4),
    ("adaptive_grid", "parallel", 7),
    ("diffusion", "parallel", 4),
    ("flow", "parallel", 4),
    ("l1", "parallel", 4),
]
IDS = [f"{n}-{d}-{a}d" for n, d, a in HEADS]


def build(name: str, decoding: str, action_dim: int):
    torch.manual_seed(0)
    cfg = HeadConfig(
        name=name,
        decoding=decoding,
        num_bins=16,
        grid_translation=[4, 4, 2],
        grid_rotation=[2, 2, 2],
        denoiser_width=32,
        denoiser_blocks=1,
        decoder_depth=1,
        sample_steps=3,
    )
    head = make_head(cfg, D, H, action_dim, attention_heads=2)
    if name == "adaptive_grid":
        head.grid.fit(torch.rand(200, action_dim) * 2 - 1)
    return head


@pytest.mark.parametrize(("name", "decoding", "action_dim"), HEADS, ids=IDS)
def test_shapes_and_finite_loss(name, decoding, action_dim):
    head = build(name, decoding, action_dim)
    readout = torch.randn(B, head.num_readouts, D, requires_grad=True)
    actions = torch.rand(B, H, action_dim) * 2 - 1
    pad = torch.zeros(B, H, dtype=torch.bool)
    loss, metrics = head.loss(readout, actions, pad, generator=torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and math.isfinite(loss.item()) and float(metrics["loss"]) == pytest.approx(loss.item())
    loss.backward()
    assert readout.grad is not None and bool(readout.grad.abs().sum() > 0)
    with torch.no_grad():
        out = head.sample(readout, generator=torch.Generator().manual_seed(0))
    assert out.shape == (B, H, action_dim) and bool(torch.isfinite(out).all())


@pytest.mark.parametrize(("name", "decoding", "action_dim"), HEADS, ids=IDS)
def test_padded_steps_do_not_change_the_loss(name, decoding, action_dim):
    head = build(name, decoding, action_dim)
    readout = torch.randn(B, head.num_readouts, D)
    actions = torch.rand(B, H, action_dim) * 2 - 1
    pad = torch.zeros(B, H, dtype=torch.bool)
    pad[0, 2:] = True
    pad[2, 1:] = True
    changed = actions.clone()
    changed[pad] = torch.rand(int(pad.sum()), action_dim) * 2 - 1
    real = actions.clone()
    real[~pad] = torch.rand(int((~pad).sum()), action_dim) * 2 - 1

    def loss(a):
        return head.loss(readout, a, pad, generator=torch.Generator().manual_seed(7))[0].item()

    assert loss(changed) == loss(actions)
    assert loss(real) != loss(actions)  # ...while real steps do count


@pytest.mark.parametrize(("name", "decoding", "action_dim"), HEADS, ids=IDS)
def test_sampling_is_reproducible_with_a_generator(name, decoding, action_dim):
    head = build(name, decoding, action_dim)
    head.cfg.temperature = 1.0  # token heads sample too
    readout = torch.randn(2, head.num_readouts, D)
    with torch.no_grad():
        a = head.sample(readout, generator=torch.Generator().manual_seed(3))
        b = head.sample(readout, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_cosine_schedule_matches_diffusers_formula():
    ab = squaredcos_cap_v2(100)
    f = [math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2 for t in (0.0, 0.01, 1.0)]
    assert ab[0].item() == pytest.approx(f[1] / f[0])
    assert bool((ab[1:] < ab[:-1]).all()) and 0 < ab[-1].item() < 1e-3


def test_ddim_timesteps():
    assert ddim_timesteps(100, 10, "trailing") == [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]
    assert ddim_timesteps(100, 10, "leading") == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert ddim_timesteps(100, 1, "trailing") == [99]


def test_ddim_recovers_the_chunk_with_a_perfect_noise_model():
    """If eps_theta returns the true noise, one trailing DDIM step from t = T-1 lands on the clean chunk."""
    head = build("diffusion", "parallel", 4)
    clean = torch.rand(2, H, 4) * 1.6 - 0.8
    noise = torch.randn(2, H, 4)
    ab = head.alphas_cumprod[99]
    x_t = ab.sqrt() * clean + (1 - ab).sqrt() * noise
    head._eps = lambda x, t, r: noise
    out = head.sample(torch.zeros(2, H, D), noise=x_t, steps=1)
    assert torch.allclose(out, clean, atol=1e-4)


def test_flow_euler_follows_a_straight_path():
    """With the exact velocity noise - a, Euler integration from the noise reaches a in any number of steps."""
    head = build("flow", "parallel", 4)
    target = torch.rand(2, H, 4)
    noise = torch.randn(2, H, 4)
    head._velocity = lambda x, t, r: noise - target
    out = head.sample(torch.zeros(2, H, D), noise=noise, steps=5)
    assert torch.allclose(out, target, atol=1e-5)


def test_flow_time_distribution():
    t = sample_time(200_000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert float(t.min()) >= 0.001 and float(t.max()) <= 1.0
    # E[Beta(1.5, 1)] = 1.5 / 2.5 = 0.6
    assert t.mean().item() == pytest.approx(0.6 * 0.999 + 0.001, abs=3e-3)

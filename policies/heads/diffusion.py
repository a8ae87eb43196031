"""Diffusion head: DDPM training with epsilon prediction, DDIM sampling.

Sources: Diffusion Policy (real-stanford/diffusion_policy, diffusion_unet_image_policy.py with
diffusers' DDPMScheduler / DDIMScheduler: 100 training steps, `squaredcos_cap_v2` betas, epsilon
prediction, clip_sample) and Octo's MLP denoiser (octo/model/components/action_heads.py
`DiffusionActionHead`). The schedule is written out here rather than taken from diffusers:

    alpha_bar(s) = cos((s + 0.008) / 1.008 * pi / 2)^2,   beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), 0.999)
    train:  t ~ U{0..T-1},  x_t = sqrt(ab_t) a + sqrt(1 - ab_t) eps,  loss = |eps_theta(x_t, t) - eps|^2
    DDIM (eta = 0): x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), clipped to [-1, 1];
                    x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps,  ab_prev = 1 after the last step
                    (diffusers' set_alpha_to_one, as Diffusion Policy configures it)

Timesteps for `sample_steps` DDIM steps: "trailing" (default) = round(T - k T / n) - 1 for k = 0..n-1,
which starts at t = T-1 for any n (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps
are Flawed"); diffusers' "leading" = k * (T // n) reversed starts at T - T/n, so one or two steps begin
from a timestep the pure-noise input does not match. Both are available (`head.timestep_spacing`).
`diffusion_loss` and `ddim_sample` are the rule itself, shared with the VLM policy's action expert.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from polyact.policies.config import HeadConfig
from polyact.policies.heads.base import ActionHead, ChunkDenoiser, masked_mean, sincos_embedding, zero_padded


def squaredcos_cap_v2(steps: int) -> torch.Tensor:
    """Cumulative alphas (steps,) of the cosine schedule (Nichol & Dhariwal 2021; diffusers' name)."""

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = torch.tensor(
        [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999) for i in range(steps)], dtype=torch.float64
    )
    return torch.cumprod(1 - betas, dim=0)


def ddim_timesteps(train_steps: int, sample_steps: int, spacing: str) -> list[int]:
    """Descending timesteps visited by DDIM."""
    if spacing == "trailing":
        return [round(train_steps - k * train_steps / sample_steps) - 1 for k in range(sample_steps)]
    ratio = train_steps // sample_steps
    return [k * ratio for k in reversed(range(sample_steps))]


Epsilon = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # x_t (B, H, A), timestep (B,) -> eps (B, H, A)


def diffusion_loss(
    eps_model: Epsilon,
    actions: torch.Tensor,
    pad: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DDPM's epsilon-prediction loss on normalised actions (B, H, A), padded steps excluded."""
    a = zero_padded(actions, pad)
    b = a.shape[0]
    noise = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
    t = torch.randint(0, alphas_cumprod.shape[0], (b,), generator=generator, device=a.device)
    ab = alphas_cumprod[t].reshape(b, 1, 1)
    eps = eps_model(ab.sqrt() * a + (1 - ab).sqrt() * noise, t)
    loss = masked_mean(F.mse_loss(eps, noise, reduction="none"), pad)
    return loss, {"loss": loss.detach()}


def ddim_sample(
    eps_model: Epsilon, noise: torch.Tensor, alphas_cumprod: torch.Tensor, timesteps: list[int], clip: bool
) -> torch.Tensor:
    """DDIM (eta = 0) from `noise` (B, H, A) through the descending `timesteps`."""
    x, b = noise, noise.shape[0]
    for i, t in enumerate(timesteps):
        ab = alphas_cumprod[t]
        ab_prev = alphas_cumprod[timesteps[i + 1]] if i + 1 < len(timesteps) else ab.new_ones(())
        eps = eps_model(x, torch.full((b,), t, device=x.device))
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
        x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return x


class DiffusionHead(ActionHead):
    def __init__(self, cfg: HeadConfig, width: int, chunk: int, action_dim: int):
        super().__init__(cfg, width, chunk, action_dim)
        self.num_readouts = chunk
        self.denoiser = ChunkDenoiser(width, chunk, chunk, action_dim, cfg.denoiser_width, cfg.denoiser_blocks)
        self.register_buffer("alphas_cumprod", squaredcos_cap_v2(cfg.diffusion_train_steps).float(), persistent=False)

    def _eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # Diffusion Policy's SinusoidalPosEmb of the integer timestep
        features = sincos_embedding(t, self.cfg.denoiser_width, 2 * math.pi, 2 * math.pi * 1e4)
        return self.denoiser(x, features, cond)

    def loss(self, readout, actions, pad, generator=None):
        cond = self.denoiser.condition(readout)
        return diffusion_loss(lambda x, t: self._eps(x, t, cond), actions, pad, self.alphas_cumprod, generator)

    def sample(self, readout, generator=None, noise=None, steps: int | None = None):
        """DDIM with `steps` (default head.sample_steps) steps from `noise` (B, H, A) or fresh noise."""
        b = readout.shape[0]
        x = (
            noise
            if noise is not None
            else torch.randn(
                (b, self.chunk, self.action_dim), generator=generator, device=readout.device, dtype=readout.dtype
            )
        )
        ts = ddim_timesteps(self.cfg.diffusion_train_steps, steps or self.cfg.sample_steps, self.cfg.timestep_spacing)
        cond = self.denoiser.condition(readout)
        return ddim_sample(lambda x, t: self._eps(x, t, cond), x, self.alphas_cumprod, ts, self.cfg.clip_sample)

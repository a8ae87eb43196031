"""Flow-matching head, as in pi0 (Physical-Intelligence/openpi src/openpi/models/pi0.py).

    train:  t = Beta(1.5, 1) * 0.999 + 0.001,  x_t = t * noise + (1 - t) * a,  target u = noise - a,
            loss = |v_theta(x_t, t) - u|^2
    sample: x_1 = noise; `sample_steps` Euler steps of dt = -1/n from t = 1 to t = 0: x <- x + dt * v(x, t)

The Beta(1.5, 1) time puts more training on noisier t (pi0 section 4); the time features are pi0's
sin-cos embedding with periods from 4e-3 to 4. The velocity model is the same whole-chunk MLP denoiser
as the diffusion head, in place of pi0's action expert transformer; `flow_matching_loss` and
`euler_sample` are the rule itself, shared with the VLM policy's action expert (policies/vlm/expert.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from polyact.policies.config import HeadConfig
from polyact.policies.heads.base import ActionHead, ChunkDenoiser, masked_mean, sincos_embedding, zero_padded


def sample_time(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """pi0's t = Beta(1.5, 1) * 0.999 + 0.001, (n,). Beta(a, 1) has CDF x^a, so x = u^(1/a) samples it
    exactly and, unlike torch.distributions.Beta, honours a torch.Generator."""
    u = torch.rand(n, generator=generator, device=device)
    return u ** (1.0 / 1.5) * 0.999 + 0.001


Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # x_t (B, H, A), t (B,) -> v (B, H, A)


def flow_matching_loss(
    velocity: Velocity, actions: torch.Tensor, pad: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """pi0's flow-matching loss of a velocity model on normalised actions (B, H, A), padded steps excluded."""
    a = zero_padded(actions, pad)
    b = a.shape[0]
    noise = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
    t = sample_time(b, generator, a.device).to(a.dtype)
    tt = t.reshape(b, 1, 1)
    v = velocity(tt * noise + (1 - tt) * a, t)
    loss = masked_mean(F.mse_loss(v, noise - a, reduction="none"), pad)
    return loss, {"loss": loss.detach()}


def euler_sample(velocity: Velocity, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """Euler integration of `velocity` from noise (t = 1) to actions (t = 0) in `steps` steps."""
    x, b = noise, noise.shape[0]
    for k in range(steps):
        t = torch.full((b,), 1.0 - k / steps, device=x.device, dtype=x.dtype)
        x = x - velocity(x, t) / steps
    return x


class FlowHead(ActionHead):
    def __init__(self, cfg: HeadConfig, width: int, chunk: int, action_dim: int):
        super().__init__(cfg, width, chunk, action_dim)
        self.num_readouts = chunk
        self.denoiser = ChunkDenoiser(width, chunk, chunk, action_dim, cfg.denoiser_width, cfg.denoiser_blocks)

    def _velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, sincos_embedding(t, self.cfg.denoiser_width, 4e-3, 4.0), cond)

    def loss(self, readout, actions, pad, generator=None):
        cond = self.denoiser.condition(readout)
        return flow_matching_loss(lambda x, t: self._velocity(x, t, cond), actions, pad, generator)

    def sample(self, readout, generator=None, noise=None, steps: int | None = None):
        """Euler integration from noise (t = 1) to actions (t = 0) in `steps` (default head.sample_steps)."""
        b = readout.shape[0]
        x = (
            noise
            if noise is not None
            else torch.randn(
                (b, self.chunk, self.action_dim), generator=generator, device=readout.device, dtype=readout.dtype
            )
        )
        cond = self.denoiser.condition(readout)
        return euler_sample(lambda x, t: self._velocity(x, t, cond), x, steps or self.cfg.sample_steps)

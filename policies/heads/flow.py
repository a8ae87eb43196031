"""Flow-matching head, as in pi0 (Physical-Intelligence/openpi src/openpi/models/pi0.py).

    train:  t = Beta(1.5, 1) * 0.999 + 0.001,  x_t = t * noise + (1 - t) * a,  target u = noise - a,
            loss = |v_theta(x_t, t) - u|^2
    sample: x_1 = noise; `sample_steps` Euler steps of dt = -1/n from t = 1 to t = 0: x <- x + dt * v(x, t)

The Beta(1.5, 1) time puts more training on noisier t (pi0 section 4); the time features are pi0's
sin-cos embedding with periods from 4e-3 to 4. The velocity model is the same whole-chunk MLP denoiser
as the diffusion head, in place of pi0's action expert transformer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from polyact.policies.config import HeadConfig
from polyact.policies.heads.base import ActionHead, ChunkDenoiser, masked_mean, sincos_embedding, zero_padded


def sample_time(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """pi0's t = Beta(1.5, 1) * 0.999 + 0.001, (n,). Beta(a, 1) has CDF x^a, so x = u^(1/a) samples it
    exactly and, unlike torch.distributions.Beta, honours a torch.Generator."""
    u = torch.rand(n, generator=generator, device=device)
    return u ** (1.0 / 1.5) * 0.999 + 0.001


class FlowHead(ActionHead):
    def __init__(self, cfg: HeadConfig, width: int, chunk: int, action_dim: int):
        super().__init__(cfg, width, chunk, action_dim)
        self.num_readouts = chunk
        self.denoiser = ChunkDenoiser(width, chunk, chunk, action_dim, cfg.denoiser_width, cfg.denoiser_blocks)

    def _velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, sincos_embedding(t, self.cfg.denoiser_width, 4e-3, 4.0), cond)

    def loss(self, readout, actions, pad, generator=None):
        a = zero_padded(actions, pad)
        b = a.shape[0]
        noise = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        t = sample_time(b, generator, a.device).to(a.dtype)
        tt = t.reshape(b, 1, 1)
        x_t = tt * noise + (1 - tt) * a
        v = self._velocity(x_t, t, self.denoiser.condition(readout))
        loss = masked_mean(F.mse_loss(v, noise - a, reduction="none"), pad)
        return loss, {"loss": loss.detach()}

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
        n = steps or self.cfg.sample_steps
        cond = self.denoiser.condition(readout)
        for k in range(n):
            t = torch.full((b,), 1.0 - k / n, device=x.device, dtype=x.dtype)
            x = x - self._velocity(x, t, cond) / n
        return x

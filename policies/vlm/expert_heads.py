"""The continuous heads' rules (heads/flow.py, heads/diffusion.py, heads/l1.py) driving the action expert.

One definition of each rule: the expert (expert.py) stands where the trunk's heads put their chunk
denoiser, as a model (x (B, H, A), time (B,)) -> (B, H, A):

    flow       velocity of pi0's flow matching; Euler steps from noise (time features as pi0's)
    diffusion  DDPM's epsilon; DDIM sampling (Diffusion Policy's time features of the integer timestep)
    l1         the chunk itself from an all-zero input at time 0, as OpenVLA-OFT's parallel decoding
               reads empty action embeddings; trained with the mean absolute error, deterministic
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from polyact.policies.config import HeadConfig
from polyact.policies.heads.base import masked_mean, zero_padded
from polyact.policies.heads.diffusion import ddim_sample, ddim_timesteps, diffusion_loss, squaredcos_cap_v2
from polyact.policies.heads.flow import euler_sample, flow_matching_loss

EXPERT_HEADS = ("flow", "diffusion", "l1")
# min and max periods of the time's sin-cos features (heads/flow.py's and heads/diffusion.py's)
TIME_PERIODS = {"flow": (4e-3, 4.0), "diffusion": (2 * math.pi, 2 * math.pi * 1e4), "l1": (4e-3, 4.0)}

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ExpertRule:
    """Loss and sampling of head `cfg.name` for a model of (x, time)."""

    def __init__(self, cfg: HeadConfig):
        self.cfg = cfg
        self.alphas_cumprod = squaredcos_cap_v2(cfg.diffusion_train_steps).float() if cfg.name == "diffusion" else None

    def loss(
        self, model: Model, actions: torch.Tensor, pad: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Normalised actions (B, H, A), pad (B, H) -> mean loss over the real steps, metrics."""
        if self.cfg.name == "flow":
            return flow_matching_loss(model, actions, pad, generator)
        if self.cfg.name == "diffusion":
            return diffusion_loss(model, actions, pad, self.alphas_cumprod.to(actions.device), generator)
        predicted = self._regress(model, actions)
        loss = masked_mean(F.l1_loss(predicted, zero_padded(actions, pad), reduction="none"), pad)
        return loss, {"loss": loss.detach()}

    def sample(self, model: Model, noise: torch.Tensor) -> torch.Tensor:
        """Normalised actions (B, H, A) from `noise` (B, H, A), which l1 ignores."""
        if self.cfg.name == "flow":
            return euler_sample(model, noise, self.cfg.sample_steps)
        if self.cfg.name == "diffusion":
            cfg = self.cfg
            steps = ddim_timesteps(cfg.diffusion_train_steps, cfg.sample_steps, cfg.timestep_spacing)
            return ddim_sample(model, noise, self.alphas_cumprod.to(noise.device), steps, cfg.clip_sample)
        return self._regress(model, noise)

    @staticmethod
    def _regress(model: Model, like: torch.Tensor) -> torch.Tensor:
        return model(torch.zeros_like(like), torch.zeros(like.shape[0], device=like.device, dtype=like.dtype))

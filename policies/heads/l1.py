"""L1 regression of the whole chunk, as OpenVLA-OFT's parallel-decoding head (moojink/openvla-oft
prismatic/models/action_heads.py `L1RegressionActionHead`): every chunk step is read from its own
readout token by an MLP, all at once, trained with the mean absolute error. With `head.readouts=1`
one readout token is decoded into the whole chunk instead (Octo's single readout), which halves the
trunk's tokens on a CPU. Deterministic: `sample` ignores generator and noise.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import nn

from polyact.policies.config import HeadConfig
from polyact.policies.heads.base import ActionHead, masked_mean


class L1Head(ActionHead):
    def __init__(self, cfg: HeadConfig, width: int, chunk: int, action_dim: int):
        super().__init__(cfg, width, chunk, action_dim)
        self.num_readouts = chunk if cfg.readouts == 0 else 1
        per_token = action_dim if self.num_readouts == chunk else chunk * action_dim
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, per_token))

    def sample(self, readout, generator=None, noise=None):
        out = self.mlp(readout)  # (B, R, per_token)
        return rearrange(out, "b r (h a) -> b (r h) a", a=self.action_dim)  # (B, H, A)

    def loss(self, readout, actions, pad, generator=None):
        loss = masked_mean(F.l1_loss(self.sample(readout), actions, reduction="none"), pad)
        return loss, {"loss": loss.detach()}

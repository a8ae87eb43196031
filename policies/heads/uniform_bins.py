"""OpenVLA action tokens: each normalised action dimension falls in one of `num_bins` uniform bins.

Source: openvla/openvla prismatic/vla/action_tokenizer.py. Actions are first normalised with q01/q99
to [-1, 1] (the policy's normaliser), clipped, binned, and decoded to bin centres. OpenVLA's code
builds `linspace(-1, 1, 256)` as bin EDGES, so it has 255 bins (the note in its decode explains the
off-by-one); we make `num_bins` the number of bins, 256 by default as the paper states.

Decoding: "parallel" predicts every (step, dimension) token at once from its own readout token, as
OpenVLA-OFT does for chunks; "autoregressive" decodes them one after another like OpenVLA (here with a
small causal decoder over the flattened chunk that attends to H readout tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from polyact.policies.config import HeadConfig
from polyact.policies.heads.base import ActionHead, masked_mean, token_entropy, zero_padded
from polyact.policies.trunk import Block


def encode_bins(x: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Normalised actions -> bin indices in [0, num_bins); values outside [-1, 1] go to the end bins."""
    idx = torch.floor((x.clamp(-1.0, 1.0) + 1.0) * (num_bins / 2.0)).long()
    return idx.clamp(0, num_bins - 1)


def decode_bins(idx: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Bin indices -> bin centres in [-1, 1]."""
    return -1.0 + (idx.float() + 0.5) * (2.0 / num_bins)


def pick_tokens(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """Most likely token at temperature 0, else a sample from softmax(logits / temperature); (..., V) -> (...)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = F.softmax(logits.float() / temperature, dim=-1)
    flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    return flat.reshape(probs.shape[:-1])


class UniformBinsHead(ActionHead):
    predicts_distribution = True

    def __init__(self, cfg: HeadConfig, width: int, chunk: int, action_dim: int, attention_heads: int):
        super().__init__(cfg, width, chunk, action_dim)
        self.num_bins = cfg.num_bins
        self.autoregressive = cfg.decoding == "autoregressive"
        self.logits = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, cfg.num_bins))
        if self.autoregressive:
            self.num_readouts = chunk
            n = chunk * action_dim
            self.token_embed = nn.Embedding(cfg.num_bins + 1, width)  # the last id is "begin"
            self.token_pos = nn.Parameter(torch.randn(n, width) * 0.02)
            self.decoder = nn.ModuleList(Block(width, attention_heads) for _ in range(cfg.decoder_depth))
            r = self.num_readouts
            is_action = torch.arange(r + n) >= r
            causal = torch.ones(r + n, r + n).tril().bool()
            # readouts see readouts; action position i sees every readout and actions <= i
            mask = (~is_action[None, :]) | (is_action[:, None] & causal)
            self.register_buffer("attend", mask, persistent=False)
        else:
            self.num_readouts = chunk * action_dim

    def _decode_logits(self, readout: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Autoregressive: readout (B, R, D), input token ids (B, n) (begin + previous tokens) -> (B, n, V)."""
        r, n = readout.shape[1], inputs.shape[1]
        x = torch.cat([readout, self.token_embed(inputs) + self.token_pos[:n]], dim=1)
        attend = self.attend[: r + n, : r + n]
        for block in self.decoder:
            x = block(x, attend)
        return self.logits(x[:, r:])

    def _logits(self, readout: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, H, A, V) for target bins (B, H, A)."""
        if not self.autoregressive:
            return rearrange(self.logits(readout), "b (h a) v -> b h a v", h=self.chunk)
        flat = rearrange(targets, "b h a -> b (h a)")
        begin = flat.new_full((flat.shape[0], 1), self.num_bins)
        logits = self._decode_logits(readout, torch.cat([begin, flat[:, :-1]], dim=1))
        return rearrange(logits, "b (h a) v -> b h a v", h=self.chunk)

    def loss(self, readout, actions, pad, generator=None):
        targets = encode_bins(zero_padded(actions, pad), self.num_bins)  # (B, H, A)
        logits = self._logits(readout, targets)
        ce = F.cross_entropy(rearrange(logits, "b h a v -> b v h a"), targets, reduction="none")  # (B, H, A)
        loss = masked_mean(ce, pad)
        with torch.no_grad():
            accuracy = masked_mean((logits.argmax(-1) == targets).float(), pad)
        return loss, {"loss": loss.detach(), "token_accuracy": accuracy.detach()}

    def sample(self, readout, generator=None, noise=None):
        return decode_bins(self._tokens(readout, self.cfg.temperature, generator), self.num_bins)

    def _tokens(self, readout: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
        """Decoded bins (B, H, A): at once (parallel) or one after another (autoregressive)."""
        if not self.autoregressive:
            return pick_tokens(self._logits(readout, None), temperature, generator)
        b, n = readout.shape[0], self.chunk * self.action_dim
        inputs = torch.full((b, 1), self.num_bins, dtype=torch.long, device=readout.device)
        for _ in range(n):
            nxt = pick_tokens(self._decode_logits(readout, inputs)[:, -1], temperature, generator)  # (B,)
            inputs = torch.cat([inputs, nxt[:, None]], dim=1)
        return rearrange(inputs[:, 1:], "b (h a) -> b h a", h=self.chunk)

    def entropy(self, readout):
        """Autoregressive decoding: each token's distribution given the greedy tokens before it."""
        greedy = None
        if self.autoregressive:
            with torch.no_grad():
                greedy = self._tokens(readout, 0.0, None)
        return token_entropy(self._logits(readout, greedy)).flatten(1).mean(1)

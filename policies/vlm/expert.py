"""pi0's action expert: a second, smaller transformer whose layers attend to the VLM's keys and values.

    prefix  (images, prompt) ──► VLM, once per observation ──► K_l, V_l of every decoder layer l (KV cache)
    suffix  [state, x_t + time per chunk step] ──► expert layer l: queries over [K_l, V_l ; own K, V] ──► v

Layer correspondence: pi0's (arXiv 2410.24164 section 3; openpi src/openpi/models/pi0.py and gemma.py, where
the expert is the second weight set of one mixture-of-transformers): expert layer l attends to layer l of
the VLM, every layer, so the expert has as many layers as the language model and the same attention
geometry (query heads, key/value heads, head dim); its width and MLP are its own (smaller). SmolVLA
(arXiv 2506.01844) instead reads only the first half of the layers and interleaves cross- and
self-attention layers, which halves the VLM's cost on a 500M model; here pi0's every-layer reading is
chosen because the prefix is computed once per chunk anyway (the cost that SmolVLA saves is the VLM's,
paid once, not per integration step), because it needs no projection of the VLM's keys into the expert
(the geometry matches layer by layer), and because the cache transformers returns already holds every
layer's rotated keys, so no layer of the VLM is cut or re-implemented. SmolVLA's reading is the option
`vlm.expert_layers=first_half`: the VLM's upper layers are dropped (backbone.py) and expert layer l
still reads VLM layer l, for the first half (SmolVLA's alternation of cross- and self-attention is not
taken: every expert layer attends to both, as here with every layer).

The prefix attends to itself only (PaliGemma bidirectionally, Idefics3 causally, as the VLM does), so
its keys and values do not depend on the suffix: training runs the VLM on the prefix and the expert
on the suffix, which equals pi0's joint forward with its block mask, and sampling reuses the one prefix
cache for all of the flow's Euler steps. Suffix tokens attend to the prefix's real (unpadded) tokens and
to each other bidirectionally (pi0 keeps the state token from attending to the action tokens; here it
does, a simplification), at positions continuing the prefix's. Time enters as pi0's: the noisy action's
embedding and the time's sin-cos features, concatenated, through a SiLU MLP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from polyact.policies.heads.base import sincos_embedding


@dataclass
class Prefix:
    """The VLM's KV cache of one batch of observations: keys/values (B, KV heads, L, head dim) per
    layer, which prefix positions are real tokens (B, L), the first suffix position (B,), and the last
    layer's hidden states (B, L, D), which the expert does not read (see `tie_to_loss`)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor
    next_position: torch.Tensor
    hidden: torch.Tensor

    def tie_to_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """`loss` + 0 x the last hidden states: the same value and gradients, but every decoder layer's
        output now reaches the loss. FSDP2 gathers a sharded layer's weights for the backward pass from a
        hook on the layer's output; the last layer's output is otherwise unused (only its keys and values
        are), so its weights would not be gathered when the gradient reaches its key/value projections."""
        return loss + 0.0 * self.hidden.float().mean()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding, the rotate-half convention of Gemma and Llama; x (B, heads, S, D)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None] + rotated * sin[:, None]


class ExpertLayer(nn.Module):
    """Pre-norm attention (over the VLM layer's keys and values and its own) and a gated GELU MLP."""

    def __init__(self, width: int, heads: int, kv_heads: int, head_dim: int, eps: float):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.attn_norm = nn.RMSNorm(width, eps=eps)
        self.q = nn.Linear(width, heads * head_dim, bias=False)
        self.kv = nn.Linear(width, 2 * kv_heads * head_dim, bias=False)
        self.o = nn.Linear(heads * head_dim, width, bias=False)
        self.mlp_norm = nn.RMSNorm(width, eps=eps)
        self.gate_up = nn.Linear(width, 8 * width, bias=False)
        self.down = nn.Linear(4 * width, width, bias=False)

    def forward(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, rope: tuple
    ) -> torch.Tensor:
        """x (B, S, W); keys/values (B, KV, L, D), the VLM layer's; mask (B, 1, S, L + S) True = attend."""
        b, s, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(h).view(b, s, 2, self.kv_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = _rotate(q, *rope), _rotate(k, *rope)
        k = torch.cat([keys.to(k.dtype), k], dim=2)
        v = torch.cat([values.to(v.dtype), v], dim=2)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=self.heads != self.kv_heads)
        x = x + self.o(attended.transpose(1, 2).reshape(b, s, -1))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.gelu(gate, approximate="tanh") * up)


class ActionExpert(nn.Module):
    """The velocity model v(x_t, t | state, prefix) of pi0's flow matching, or the epsilon model of
    diffusion, or an L1 regressor (expert_heads.py); `time_periods` are its time features' periods;
    `num_layers` those of the VLM it reads (0: every layer of the language model)."""

    fits_to_data = False  # the training loop's head flags (heads/base.py)
    predicts_distribution = False

    def __init__(
        self,
        text_config: Any,
        width: int,
        chunk: int,
        action_dim: int,
        state_dim: int,
        time_periods: tuple[float, float] = (4e-3, 4.0),
        num_layers: int = 0,
    ):
        super().__init__()
        self.time_periods = time_periods
        heads, kv_heads = int(text_config.num_attention_heads), int(text_config.num_key_value_heads)
        head_dim = int(getattr(text_config, "head_dim", None) or text_config.hidden_size // heads)
        width = width or int(text_config.hidden_size) // 2
        eps = float(getattr(text_config, "rms_norm_eps", 1e-6))
        self.width, self.chunk, self.action_dim = width, chunk, action_dim
        self.state_in = nn.Linear(state_dim, width) if state_dim else None
        self.action_in = nn.Linear(action_dim, width)
        self.action_time = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, width))
        self.layers = nn.ModuleList(
            ExpertLayer(width, heads, kv_heads, head_dim, eps)
            for _ in range(num_layers or int(text_config.num_hidden_layers))
        )
        self.norm = nn.RMSNorm(width, eps=eps)
        self.action_out = nn.Linear(width, action_dim)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, state: torch.Tensor | None, prefix: Prefix, rotary: nn.Module
    ) -> torch.Tensor:
        """x_t (B, H, A), t (B,), normalised state (B, S) -> velocity (B, H, A); `rotary` is the VLM's
        rotary embedding module, so the suffix's positions are rotated exactly as the prefix's."""
        b = x.shape[0]
        time = sincos_embedding(t, self.width, *self.time_periods).to(x.dtype)[:, None].expand(b, self.chunk, -1)
        tokens = self.action_time(torch.cat([self.action_in(x), time], dim=-1))
        if self.state_in is not None:
            tokens = torch.cat([self.state_in(state.to(x.dtype))[:, None], tokens], dim=1)
        s = tokens.shape[1]
        positions = prefix.next_position[:, None] + torch.arange(s, device=x.device)
        cos, sin = rotary(tokens, positions)
        own = torch.ones(b, s, dtype=torch.bool, device=x.device)
        mask = torch.cat([prefix.mask, own], dim=1)[:, None, None].expand(b, 1, s, -1)
        for layer, keys, values in zip(self.layers, prefix.keys, prefix.values, strict=True):
            tokens = layer(tokens, keys, values, mask, (cos.to(tokens.dtype), sin.to(tokens.dtype)))
        return self.action_out(self.norm(tokens[:, s - self.chunk :]))

"""OpenVLA's action tokens: each normalised action dimension's bin is one of the LAST `num_bins` ids of
the tokenizer's vocabulary (openvla/openvla prismatic/vla/action_tokenizer.py).

OpenVLA maps an action to `vocab_size - digitize(action)`, digitize in 1..256, so the lowest bin is the
last id and the highest bin the 256th from the end: id = vocab_size - 1 - bin here, with the policy's
256 uniform bins over [-1, 1] (heads/uniform_bins.py; OpenVLA's own code has 255, its note says why).
`vocab_size` is the tokenizer's base vocabulary without added special tokens, as OpenVLA's, so those
ids overwrite the rarest ordinary tokens, never an image or control token.
"""

from __future__ import annotations

import torch

from polyact.errors import ConfigError
from polyact.policies.heads.uniform_bins import decode_bins, encode_bins


class ActionTokens:
    """Normalised actions <-> language-model token ids; the VLM policy's "head" (heads/base.py's flag)."""

    fits_to_data = False  # uniform bins: nothing to fit to a dataset

    def __init__(self, vocab_size: int, num_bins: int, reserved: set[int], model_vocab: int, action_dim: int):
        if num_bins > vocab_size or vocab_size > model_vocab:
            raise ConfigError(
                f"{num_bins} action bins need the last {num_bins} of the tokenizer's {vocab_size} ids, inside the "
                f"language model's {model_vocab} outputs"
            )
        self.vocab_size, self.num_bins = vocab_size, num_bins
        self.tokens_per_step = action_dim  # one token per action dimension
        self.low = vocab_size - num_bins  # the lowest action id (the highest bin)
        clash = sorted(i for i in reserved if self.low <= i < vocab_size)
        if clash:
            raise ConfigError(f"the last {num_bins} token ids, OpenVLA's action tokens, include special tokens {clash}")

    def bins_to_ids(self, bins: torch.Tensor) -> torch.Tensor:
        return self.vocab_size - 1 - bins

    def ids_to_bins(self, ids: torch.Tensor) -> torch.Tensor:
        return (self.vocab_size - 1 - ids).clamp(0, self.num_bins - 1)

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised actions (...,) in [-1, 1] (clipped) -> token ids (...,)."""
        return self.bins_to_ids(encode_bins(actions, self.num_bins))

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> bin centres in [-1, 1]."""
        return decode_bins(self.ids_to_bins(ids), self.num_bins)

    def restrict(self, logits: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Logits (..., V) with every non-action id at -inf: greedy decoding can only emit an action (at any
        position: `first`, the position of the first row, matters to grid tokens only)."""
        keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        keep[self.low : self.vocab_size] = True
        return logits.masked_fill(~keep, float("-inf"))

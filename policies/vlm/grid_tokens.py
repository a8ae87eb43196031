"""SpatialVLA's action tokens through the language model (head.name=adaptive_grid with backbone=vlm).

SpatialVLA (SpatialVLA/SpatialVLA model/action_tokenizer.py, train/spatialvla_pretrain.py,
train/spatialvla_finetune.py) adds NEW tokens to the vocabulary, one per cell of its adaptive grids:
`<ACTION00000>`... for the translation cells (theta x phi x r), then the rotation cells (roll x pitch x
yaw), then the gripper levels, added with `tokenizer.add_tokens(..., special_tokens=True)`, so their ids
follow the base vocabulary. A step is one token per part (translation, [rotation,] gripper: 2 for
Meta-World's 4-D actions, 3 for 7-D), so a chunk of H steps is H*T tokens, not H*A as OpenVLA's.

The grid itself (Gaussian equal-probability bins fitted on the training actions) is heads/adaptive_grid.py's
`AdaptiveGrid`; its edges are buffers saved with the policy. Here it is given token ids:

    part-local token of AdaptiveGrid.encode + the part's offset + `begin` (the first added id)

The embeddings of the new ids are initialised (backbone.py `_extend_vocabulary`) as SpatialVLA's
pretraining does and moved onto a new dataset's grid (`fit(first=False)`) as its fine-tuning does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import nn

from polyact.policies.config import HeadConfig
from polyact.policies.heads.adaptive_grid import QUANTITIES, RANGES, AdaptiveGrid, interpolate_grid

TOKEN = "<ACTION{:05d}>"  # SpatialVLA's ACTION_TOKEN


class GridTokens(nn.Module):
    """Normalised action chunks <-> the added grid-cell token ids; the VLM policy's "head"."""

    fits_to_data = True  # the grid's bins follow the dataset's actions

    def __init__(self, cfg: HeadConfig, action_dim: int, begin: int):
        super().__init__()
        self.grid = AdaptiveGrid(cfg, action_dim)
        self.parts = self.grid.parts
        self.sizes = [self.grid.vocab(p) for p in self.parts]
        self.offsets = [0, *itertools.accumulate(self.sizes)][:-1]
        self.tokens_per_step = len(self.parts)
        self.begin, self.count = begin, sum(self.sizes)
        self.end = begin + self.count
        # set by the backbone: the (count, D) embedding rows of the added ids, in the input embedding and
        # (when not tied to it) the language-model head, as tensors whose rows `fit` may overwrite
        self.rows: Callable[[], list[torch.Tensor]] = list

    @staticmethod
    def names(cfg: HeadConfig, action_dim: int) -> list[str]:
        """The token strings to add to the tokenizer, in id order."""
        grid = AdaptiveGrid(cfg, action_dim)
        return [TOKEN.format(i) for i in range(sum(grid.vocab(p) for p in grid.parts))]

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised actions (B, H, A) -> token ids (B, H, T)."""
        offsets = torch.tensor(self.offsets, device=actions.device)
        return self.grid.encode(actions) + offsets + self.begin

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, H, T) -> normalised actions (B, H, A) at the cells' centres."""
        offsets = torch.tensor(self.offsets, device=ids.device)
        sizes = torch.tensor(self.sizes, device=ids.device)
        local = torch.minimum((ids - self.begin - offsets).clamp(min=0), sizes - 1)
        return self.grid.decode(local)

    def restrict(self, logits: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Logits (..., n, V) of action positions first..first+n-1: each position keeps only the ids of its
        part (translation, [rotation,] gripper), so greedy decoding emits a valid step."""
        n, vocab = logits.shape[-2:]
        keep = torch.zeros(n, vocab, dtype=torch.bool, device=logits.device)
        for i in range(n):
            part = (first + i) % self.tokens_per_step
            low = self.begin + self.offsets[part]
            keep[i, low : low + self.sizes[part]] = True
        return logits.masked_fill(~keep, float("-inf"))

    @torch.no_grad()
    def fit(self, actions: torch.Tensor, first: bool = True) -> None:
        """Fit the grid to normalised actions (N, A). `first` False re-discretises a trained policy onto a
        new dataset: as SpatialVLA's `spatial_embedding_adaption`, the translation and rotation tokens'
        embeddings move from the old grid's cell centres to the new ones by linear interpolation along each
        axis (heads/adaptive_grid.py `interpolate_grid`); the gripper's do not depend on the grid. SpatialVLA
        moves the input embeddings (its untied head's rows stay); here the head's rows move with them, so
        each id's input and output rows keep describing the same cell."""
        if first:
            self.grid.fit(actions)
            return
        old = {p: self.grid.axis_centres(p) for p in self.parts if p != "gripper"}
        self.grid.fit(actions)
        for rows in self.rows():
            for part, old_axes in old.items():
                i = self.parts.index(part)
                names = QUANTITIES[:3] if part == "translation" else QUANTITIES[3:]
                block = rows[self.offsets[i] : self.offsets[i] + self.sizes[i]]
                counts = [self.grid.counts[q] for q in names]
                new_axes = self.grid.axis_centres(part)
                moved = interpolate_grid(block.reshape(*counts, -1), old_axes, new_axes, [RANGES[q] for q in names])
                block.copy_(moved.reshape(block.shape))

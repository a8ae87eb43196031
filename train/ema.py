"""An exponential moving average of the weights, which is what gets evaluated and deployed.

A shadow copy of the parameters updated with one fused `lerp` per step. It works on sharded (FSDP)
parameters too, where torch.optim.swa_utils.AveragedModel's deepcopy of the wrapped module does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - self.decay)

    @contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights (to save or evaluate them)."""
        saved = [p.detach().clone() for p in self.params]
        for p, s in zip(self.params, self.shadow, strict=True):
            p.copy_(s)
        try:
            yield
        finally:
            for p, s in zip(self.params, saved, strict=True):
                p.copy_(s)

    @torch.no_grad()
    def capture(self) -> None:
        """Make the model's current weights the average (used when restoring a checkpoint)."""
        for s, p in zip(self.shadow, self.params, strict=True):
            s.copy_(p)

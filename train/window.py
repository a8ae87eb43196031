"""What the training loop measures between two log points, kept on the device.

Reading a loss or a gradient norm every step (`float(loss)`) makes the host wait for the device, and
under DDP each check was an all-reduce as well. Here every step only adds to device tensors; the loop
reads them once per interval (one sync, two all-reduces), before it logs and before it writes a
checkpoint. A step whose loss or gradient norm is not finite is remembered by its number, so the loop
stops there with the step named, and no checkpoint is written after a bad update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from polyact.train.distributed import Dist

NO_BAD_STEP = 2**62


@dataclass(frozen=True)
class WindowReading:
    steps: int
    mean_loss: float  # over the interval's steps and every rank's batch
    grad_norm: float  # the last step's (global: gradients are all-reduced first)
    first_bad_step: int | None  # the first step (1-based) with a non-finite loss or gradient norm


class TrainingWindow:
    """Loss sum, last gradient norm and the first non-finite step of one interval, on the device."""

    def __init__(self, device: torch.device):
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.steps = 0
        self.loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self.grad_norm = torch.zeros((), device=self.device)
        self.first_bad = torch.full((), NO_BAD_STEP, device=self.device, dtype=torch.int64)

    def add(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Step `step` (1-based) is done; no host sync.

        Under FSDP the gradient norm is a DTensor holding this rank's share: a non-finite global norm has a
        non-finite share on some rank, and `read` combines the ranks' flags."""
        loss = loss.detach()
        share = grad_norm.to_local() if isinstance(grad_norm, DTensor) else grad_norm
        bad = ~(torch.isfinite(loss) & torch.isfinite(share.detach()))
        self.first_bad = torch.where(
            bad, torch.minimum(self.first_bad, torch.full_like(self.first_bad, step)), self.first_bad
        )
        self.loss_sum += loss.double()
        self.grad_norm = grad_norm.detach()
        self.steps += 1

    def read(self, d: Dist) -> WindowReading:
        """The interval's numbers, the same on every rank; starts the next interval."""
        loss_sum, first_bad = self.loss_sum.clone(), self.first_bad.clone()
        norm = self.grad_norm.full_tensor() if isinstance(self.grad_norm, DTensor) else self.grad_norm
        if d.enabled:
            dist.all_reduce(loss_sum)
            dist.all_reduce(first_bad, op=dist.ReduceOp.MIN)
        bad = int(first_bad.item())
        reading = WindowReading(
            steps=self.steps,
            mean_loss=float(loss_sum.item()) / max(1, self.steps * d.world_size),
            grad_norm=float(norm.item()),
            first_bad_step=None if bad == NO_BAD_STEP else bad,
        )
        self._reset()
        return reading

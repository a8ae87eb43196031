"""Per-task gradients and how to combine them: PCGrad, MGDA, and task-based flat regions.

With `multitask=uniform` (the default) a step back-propagates the batch's mean loss. The other methods
split the batch by task (the task-balanced sampler puts every task in it), compute each task's gradient
of its own mean loss, and combine them:

    pcgrad   (Yu et al., NeurIPS 2020, "Gradient Surgery for Multi-Task Learning") each task's gradient
             loses its component along every other task's gradient it conflicts with (negative dot
             product), the others taken in random order; the projected gradients are summed
    mgda     (Sener & Koltun, NeurIPS 2018, "Multi-Task Learning as Multi-Objective Optimization") the
             minimum-norm point of the convex hull of the task gradients (projected gradient descent on
             their Gram matrix; Sener & Koltun use Frank-Wolfe, which converges too slowly here),
             times the number of tasks, as ParetoGNN and FS-MTL scale it
    flat_*   (Phan et al., 2022, "Improving Multi-task Learning via Seeking Task-based Flat Regions",
             VietHoang1512/FS-MTL) per task, sharpness-aware minimisation: the gradient g_t at the weights
             and g_t^SAM at the weights moved by rho g_t / |g_t|; the loss parts g_t and the flat parts
             h_t = g_t^SAM - g_t are each combined by PCGrad (`flat_pcgrad`) or MGDA on unit-normed
             vectors (`flat_mgda`), and the update is their sum

Cost: one forward and backward per task in the batch (twice that for flat_*), against one for uniform;
the task gradients (tasks x parameters floats) are held at once. Under DDP each task's gradient is
averaged over all ranks' samples of that task before combining, so every rank takes the same step and
the step equals one process's on the whole batch. FSDP is refused (a rank holds only a shard).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from polyact.errors import ConfigError
from polyact.train.distributed import Dist

METHODS = ("uniform", "pcgrad", "mgda", "flat_pcgrad", "flat_mgda")
MGDA_ITERATIONS = 500


def pcgrad(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """grads (T, P) -> the sum of PCGrad's projected task gradients (P,)."""
    projected = grads.clone()
    for i in range(len(grads)):
        order = torch.randperm(len(grads), generator=generator, device=grads.device)
        for j in order.tolist():
            if j == i:
                continue
            dot = projected[i] @ grads[j]
            if dot < 0:
                projected[i] -= dot / grads[j].square().sum().clamp(min=1e-20) * grads[j]
    return projected.sum(0)


def project_to_simplex(v: torch.Tensor) -> torch.Tensor:
    """The closest point of the probability simplex to v (Duchi et al., 2008)."""
    u, _ = torch.sort(v, descending=True)
    cumulative = torch.cumsum(u, 0) - 1.0
    k = torch.arange(1, len(v) + 1, dtype=v.dtype, device=v.device)
    last = torch.nonzero(u - cumulative / k > 0).max()
    return (v - cumulative[last] / (last + 1)).clamp(min=0.0)


def min_norm_weights(grads: torch.Tensor, iterations: int = MGDA_ITERATIONS) -> torch.Tensor:
    """The convex weights (T,) whose combination of grads (T, P) has the least norm: accelerated projected
    gradient descent (FISTA) on the simplex, on the tasks' Gram matrix."""
    gram = (grads @ grads.T).double()
    step = 1.0 / (2.0 * torch.linalg.eigvalsh(gram).max().clamp(min=1e-20))
    weights = torch.full((len(grads),), 1.0 / len(grads), dtype=torch.float64, device=grads.device)
    point, momentum = weights, 1.0
    for _ in range(iterations):
        previous = weights
        weights = project_to_simplex(point - step * 2.0 * (gram @ point))
        next_momentum = (1.0 + (1.0 + 4.0 * momentum**2) ** 0.5) / 2.0
        point = weights + (momentum - 1.0) / next_momentum * (weights - previous)
        momentum = next_momentum
    return weights.to(grads.dtype)


def mgda(grads: torch.Tensor) -> torch.Tensor:
    """grads (T, P) -> T times their minimum-norm convex combination (P,)."""
    return len(grads) * (min_norm_weights(grads) @ grads)


def unit(grads: torch.Tensor) -> torch.Tensor:
    return grads / grads.norm(dim=1, keepdim=True).clamp(min=1e-20)


def sam_perturbation(grad: torch.Tensor, rho: float) -> torch.Tensor:
    """SAM's step to the (first-order) worst nearby weights: rho times the gradient's direction."""
    return rho * grad / grad.norm().clamp(min=1e-20)


def _subset(batch: Mapping[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    index = rows.tolist()
    return {k: (v[rows] if torch.is_tensor(v) else [v[i] for i in index]) for k, v in batch.items()}


class TaskGradients:
    """One optimisation step's gradients by `method`: computes them and leaves them in the parameters' .grad."""

    def __init__(self, policy: nn.Module, method: str, d: Dist, rho: float = 0.05, sharding: str = "ddp"):
        if method not in METHODS:
            raise ConfigError(f"unknown multitask method {method!r}; valid: {', '.join(METHODS)}")
        if d.enabled and sharding == "fsdp":
            raise ConfigError(f"multitask={method} needs whole task gradients on every rank: use sharding=ddp")
        self.policy, self.method, self.d, self.rho = policy, method, d, rho
        self.params = [p for p in policy.parameters() if p.requires_grad]

    def _flat_grad(self, loss: torch.Tensor) -> torch.Tensor:
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        pairs = zip(grads, self.params, strict=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in pairs])

    def _task_grads(self, batch: Mapping[str, Any], generator: torch.Generator | None) -> tuple[torch.Tensor, ...]:
        """Per task present on any rank: the loss gradient (T, P), the SAM gradient or None, the mean loss."""
        tasks = batch["task_index"]
        num_tasks = int(tasks.max()) + 1
        if self.d.enabled:
            size = torch.tensor([num_tasks], device=tasks.device)
            dist.all_reduce(size, op=dist.ReduceOp.MAX)
            num_tasks = int(size)
        flat = self.method.startswith("flat_")
        sums = torch.zeros(2 if flat else 1, num_tasks, sum(p.numel() for p in self.params), device=tasks.device)
        counts = torch.zeros(num_tasks, device=tasks.device)
        losses = torch.zeros(num_tasks, device=tasks.device)
        for task in torch.unique(tasks).tolist():
            rows = torch.nonzero(tasks == task).flatten()
            sub = _subset(batch, rows)
            loss, _ = self.policy.compute_loss(sub, generator)
            grad = self._flat_grad(loss)
            n = len(rows)
            sums[0, task], counts[task], losses[task] = grad * n, n, loss.detach() * n
            if flat:
                sums[1, task] = self._sam_grad(sub, grad, generator) * n
        if self.d.enabled:  # each task's gradient averaged over every rank's samples of it
            for t in (sums, counts, losses):
                dist.all_reduce(t)
        present = counts > 0
        mean = sums[:, present] / counts[present][None, :, None]
        return mean[0], (mean[1] if flat else None), losses.sum() / counts.sum()

    def _sam_grad(self, sub: Mapping[str, Any], grad: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The task's gradient at the weights moved by SAM's perturbation (then moved back)."""
        eps = sam_perturbation(grad, self.rho)
        offset = 0
        with torch.no_grad():
            for p in self.params:
                p.add_(eps[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
        try:
            loss, _ = self.policy.compute_loss(sub, generator)
            return self._flat_grad(loss)
        finally:
            offset = 0
            with torch.no_grad():
                for p in self.params:
                    p.sub_(eps[offset : offset + p.numel()].view_as(p))
                    offset += p.numel()

    def step(
        self, batch: Mapping[str, Any], generator: torch.Generator | None, order_seed: int = 0
    ) -> tuple[torch.Tensor, dict]:
        """Compute the combined gradient into .grad; returns the batch's mean loss and metrics. `order_seed`
        orders PCGrad's projections; it must be the same on every rank (each rank takes the same step)."""
        grads, sam, loss = self._task_grads(batch, generator)
        order = torch.Generator(grads.device).manual_seed(order_seed)
        if self.method == "pcgrad":
            update = pcgrad(grads, order)
        elif self.method == "mgda":
            update = mgda(grads)
        elif self.method == "flat_pcgrad":
            update = pcgrad(grads, order) + pcgrad(sam - grads, order)
        elif self.method == "flat_mgda":
            update = mgda(unit(grads)) + mgda(unit(sam - grads))
        else:
            raise ConfigError(f"multitask={self.method} has no combination step (uniform back-propagates the loss)")
        offset = 0
        for p in self.params:
            p.grad = update[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        conflicts = (unit(grads) @ unit(grads).T < 0).float().triu(1).sum()
        return loss, {"task_gradient_conflicts": conflicts}

"""polyact.train: one training loop from 2 CPU cores to multi-GPU clusters (torchrun, DDP or FSDP).

polyact train dataset=datasets/mt10 policy.head.name=diffusion steps=20000 out=runs/mt10-diffusion

Names are imported on first use, so `polyact.train.config` loads without torch.
"""

from __future__ import annotations

from polyact.lazy import lazy_exports

_EXPORTS = {"OptimConfig": "config", "TrainConfig": "config", "TrainingDivergedError": "loop", "train": "loop"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

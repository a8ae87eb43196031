"""polyact.train: one training loop from 2 CPU cores to multi-GPU clusters (torchrun, DDP or FSDP).

polyact train dataset=datasets/mt10 policy.head.name=diffusion steps=20000 out=runs/mt10-diffusion
"""

from polyact.train.config import OptimConfig, TrainConfig
from polyact.train.loop import TrainingDivergedError, train

__all__ = ["OptimConfig", "TrainConfig", "TrainingDivergedError", "train"]

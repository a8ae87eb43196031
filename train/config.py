"""`polyact train`: what to train on, the policy, and how to optimise it."""

from __future__ import annotations

from dataclasses import dataclass, field

from polyact.errors import ConfigError, unknown_name
from polyact.policies.config import PolicyConfig

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
SHARDINGS = ("ddp", "fsdp")
TARGETS = ("action", "subgoal")
ANNEAL_OVER = ("steps", "minutes")
MULTITASK_METHODS = ("uniform", "pcgrad", "mgda", "flat_pcgrad", "flat_mgda")


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to `min_lr_ratio * lr`; gradients clipped by norm."""

    lr: float = 3e-4
    weight_decay: float = 0.05  # not applied to biases, norms, embeddings and learned tokens
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int = 500
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 = no clipping
    # what the cosine decays over: "steps" (`steps`), or "minutes" (`max_minutes` of training, counted
    # across resumes): a run on a time budget then ends annealed however fast the machine turned out to be
    anneal_over: str = "steps"

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            raise ConfigError("optim: need lr > 0, weight_decay >= 0, grad_clip >= 0, warmup_steps >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas needs two values in [0, 1), got {self.betas}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.anneal_over not in ANNEAL_OVER:
            raise unknown_name("optim.anneal_over", self.anneal_over, ANNEAL_OVER)


@dataclass
class TrainConfig:
    """`polyact train`: a policy trained on the dataset at `dataset`, written to `out`.

    Run the same command again after a kill and training resumes from the last checkpoint in `out`.
    Under `torchrun --nproc_per_node=N` it trains data-parallel (`sharding=ddp`, or `fsdp` for large
    models); `batch_size` is the global batch over all processes.
    """

    dataset: str = "runs/quickstart/demos"
    out: str = "runs/train"
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    steps: int = 20_000
    batch_size: int = 64
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema_decay: float = 0.999  # 0 = no EMA; the EMA weights are the ones saved as out/policy
    balance_tasks: bool = True  # every task drawn equally often, whatever its number of windows
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on the CPU
    compile: bool = False  # torch.compile the model
    device: str = "auto"
    sharding: str = "ddp"  # used only under torchrun
    num_workers: int = 2  # DataLoader worker processes
    # per process (data/reader.py): episode files kept open (raise `ulimit -n` with it; each file ~0.5 MiB), and
    # the MiB of features read once and held; holding needs every episode's file open
    data_open_files: int = 1024
    data_memory_mb: int = 512
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50
    max_minutes: float = 0.0  # stop early (with a checkpoint and the policy saved) after this long; 0 = off
    seed: int = 0
    progress: bool = True
    # "action", or "subgoal": learn the dataset's `subgoal` feature instead of its actions, which makes a
    # sub-goal predictor for a policy with policy.subgoal_conditioning (chunk 1)
    target: str = "action"
    # a policy directory trained with target=subgoal: the sub-goal conditioned policy is saved with it, and
    # evaluation and serving take their sub-goals from it
    subgoal_predictor: str = ""
    # a policy directory to start from (fine-tuning): its architecture and weights, with the dataset's
    # statistics and re-fitted action grid; `policy.*` settings are then not used (train/finetune.py)
    init: str = ""
    # how the tasks' gradients make one step (train/multitask.py): "uniform" (the mean loss), "pcgrad",
    # "mgda", "flat_pcgrad", "flat_mgda" (task-based flat regions, SAM radius multitask_rho)
    multitask: str = "uniform"
    multitask_rho: float = 0.05
    # train on these of the dataset's tasks only (e.g. per-task fine-tunes for `polyact merge`); statistics stay
    # the whole dataset's, so the fine-tunes normalise as their base did; [] = every task
    tasks: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for kind, value, valid in (
            ("precision", self.precision, PRECISIONS),
            ("device", self.device, DEVICES),
            ("sharding", self.sharding, SHARDINGS),
            ("training target", self.target, TARGETS),
            ("multitask method", self.multitask, MULTITASK_METHODS),
        ):
            if value not in valid:
                raise unknown_name(kind, value, valid)
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError(
                f"steps and batch_size must be >= 1, got steps={self.steps}, batch_size={self.batch_size}"
            )
        if self.checkpoint_every < 1 or self.log_every < 1 or self.keep_checkpoints < 1:
            raise ConfigError("checkpoint_every, log_every and keep_checkpoints must be >= 1")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.data_memory_mb < 0 or self.data_open_files < 1:
            raise ConfigError(
                f"need data_memory_mb >= 0 (0 = read frames from disk) and data_open_files >= 1, got "
                f"{self.data_memory_mb} and {self.data_open_files}"
            )
        if self.num_workers < 0 or self.max_minutes < 0:
            raise ConfigError("num_workers and max_minutes must be >= 0")
        if self.optim.anneal_over == "minutes" and self.max_minutes == 0:
            raise ConfigError(
                "optim.anneal_over=minutes decays the learning rate over max_minutes: set max_minutes > 0"
            )
        if self.target == "subgoal" and self.policy.chunk != 1:
            raise ConfigError(
                f"target=subgoal predicts one sub-goal per observation: set policy.chunk=1, got {self.policy.chunk}"
            )
        if self.subgoal_predictor and self.policy.subgoal_conditioning == "none":
            raise ConfigError(
                "subgoal_predictor is for a sub-goal conditioned policy: set policy.subgoal_conditioning=gravmap"
            )

    def resume_identity(self) -> dict:
        """Settings a resumed run must share with the run it continues (steps may grow)."""
        from dataclasses import asdict

        d = asdict(self)
        for key in (
            "steps",
            "progress",
            "num_workers",
            "data_open_files",
            "data_memory_mb",
            "max_minutes",
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
        ):
            d.pop(key)
        return d

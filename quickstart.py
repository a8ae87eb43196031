"""The main job on embedded defaults: demonstrations, a policy trained on the CPU, its evaluation.

No server, no download, no GPU: scripted MT10 demonstrations are collected in parallel, a `small`
policy is trained on them for a fixed budget, and it is evaluated in simulation on seeds disjoint from
the demonstrations'. Every stage resumes when the command is run again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from polyact.collect import CollectConfig, collect
from polyact.envs.config import EnvConfig
from polyact.errors import ConfigError
from polyact.eval.config import EvalConfig
from polyact.eval.results import markdown
from polyact.eval.run import evaluate
from polyact.policies.config import HeadConfig, PolicyConfig, TextConfig, VisionConfig
from polyact.train.config import OptimConfig, TrainConfig
from polyact.train.loop import train


def _cpu_policy() -> PolicyConfig:
    """`small`, with the trunk's token count halved for the CPU: one pooled instruction token and one
    readout token decoded into the whole L1 chunk. The encoder sees the 64x64 workspace window of the
    80x80 image, and no random shift: the camera never moves, so an object's pixel position is its place
    on the table (docs/training.md, runs C and D)."""
    return PolicyConfig(
        size="small",
        vision=VisionConfig(crop=[4, 16, 64, 64], random_shift=0),
        text=TextConfig(pool=True),
        head=HeadConfig(name="l1", readouts=1),
    )


@dataclass
class QuickstartConfig:
    """`polyact quickstart`: collect, train and evaluate in `out` (demos/, train/, eval/).

    By default under `protocol=lerobot` (docs/eval.md): goal-free, LeRobot's corner2 camera, 500-step
    episodes from seeds 1000 + i, so its table can be set beside published Meta-World numbers.
    `goal=true protocol=seeds camera=corner` gives the privileged-goal variant of earlier versions.
    """

    out: str = "runs/quickstart"
    tasks: str = "MT10"
    camera: str = "corner2_lerobot"
    goal: bool = False  # hand the policy Meta-World's goal position (privileged; not comparable)
    protocol: str = "lerobot"  # the evaluation protocol (eval/config.py)
    image_size: int = 80  # rendered; the policy's encoder sees its 64x64 crop (policy.vision.crop)
    demos_per_task: int = 50  # as LeRobot's MetaWorld dataset
    policy: PolicyConfig = field(default_factory=_cpu_policy)
    train_steps: int = 10500  # at most; the cosine follows train_minutes if those run out first
    train_minutes: float = 18.0  # with collection (~4.5 min) and evaluation (~3-6 min): under 30 minutes
    batch_size: int = 64
    lr: float = 1e-3
    eval_episodes_per_task: int = 10
    episode_steps: int = 0  # evaluation episodes' step limit; 0 = the suite's (Meta-World: 500)
    workers: int = 0  # collection and evaluation processes; 0 = one per CPU core
    seed: int = 0  # training: initial weights, data order, augmentation (demonstrations and evaluation keep theirs)

    def __post_init__(self) -> None:
        if min(self.demos_per_task, self.train_steps, self.eval_episodes_per_task, self.image_size) < 1:
            raise ConfigError("demos_per_task, train_steps, eval_episodes_per_task and image_size must be >= 1")
        crop = self.policy.vision.crop
        if crop and max(crop[0] + crop[2], crop[1] + crop[3]) > self.image_size:
            raise ConfigError(  # found now rather than after the collection
                f"policy.vision.crop {list(crop)} (top, left, height, width) reaches outside the "
                f"{self.image_size}x{self.image_size} images; change image_size or the crop"
            )

    def env(self, max_episode_steps: int = 0) -> EnvConfig:
        return EnvConfig(
            tasks=self.tasks,
            cameras=[self.camera],
            height=self.image_size,
            width=self.image_size,
            max_episode_steps=max_episode_steps,
            goal=self.goal,
        )

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            dataset=str(Path(self.out) / "demos"),
            out=str(Path(self.out) / "train"),
            policy=self.policy,
            steps=self.train_steps,
            batch_size=self.batch_size,
            optim=OptimConfig(lr=self.lr, warmup_steps=300, anneal_over="minutes" if self.train_minutes else "steps"),
            num_workers=1,
            max_minutes=self.train_minutes,
            checkpoint_every=500,
            log_every=50,
            seed=self.seed,
        )

    def eval_config(self, policy_dir: str) -> EvalConfig:
        return EvalConfig(
            policy=policy_dir,
            env=self.env(self.episode_steps),
            episodes_per_task=self.eval_episodes_per_task,
            protocol=self.protocol,
            workers=self.workers,
            out=str(Path(self.out) / "eval"),
            train_dataset=str(Path(self.out) / "demos"),
        )


def run(cfg: QuickstartConfig) -> dict:
    out = Path(cfg.out)
    timings = {}

    started = time.monotonic()
    report = collect(
        CollectConfig(out=str(out / "demos"), env=cfg.env(), episodes_per_task=cfg.demos_per_task, workers=cfg.workers)
    )
    timings["collect"] = time.monotonic() - started
    print(f"\nscripted demonstrations in {out / 'demos'}:\n{report.table()}\n")

    started = time.monotonic()
    policy_dir = train(cfg.train_config())
    timings["train"] = time.monotonic() - started

    started = time.monotonic()
    results = evaluate(cfg.eval_config(str(policy_dir)))
    timings["eval"] = time.monotonic() - started

    print()
    print(markdown(results))
    print(
        "minutes: "
        + ", ".join(f"{stage} {seconds / 60:.1f}" for stage, seconds in timings.items())
        + f" (total {sum(timings.values()) / 60:.1f})"
    )
    print(f"policy: {policy_dir}; results, chart and videos: {out / 'eval'}")
    return results

"""The training loop, read top to bottom: data, policy, optimiser, then one step after another.

The same code runs on 2 CPU cores and under `torchrun --nproc_per_node=N` on GPUs (train/distributed.py).
Every step seeds its random generators from (seed, step, rank) and the sampler's position is a
function of the step, so a run killed at any moment and started again with the same command
continues exactly where its last checkpoint left off.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from polyact.atomic import write_text_atomic
from polyact.config import to_yaml
from polyact.contract import PolicyRequirements
from polyact.data import EpisodeDataset
from polyact.data.sampler import TaskBalancedSampler
from polyact.data.windows import WindowDataset, collate_windows
from polyact.errors import ConfigError, PolyactError, unknown_name
from polyact.faults import fault_point
from polyact.policies import VLAPolicy, build_policy
from polyact.policies.heads import head_class
from polyact.policies.vla import SUBGOAL_KEY
from polyact.runs import claim_run_dir
from polyact.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, write_policy
from polyact.train.config import TrainConfig
from polyact.train.distributed import Dist, max_over_ranks, setup, teardown, wrap
from polyact.train.ema import EMA
from polyact.train.finetune import policy_for_dataset, unknown_words
from polyact.train.multitask import TaskGradients
from polyact.train.window import TrainingWindow


class TrainingDivergedError(PolyactError):
    """The loss or the gradient norm became NaN or infinite."""


def train(cfg: TrainConfig) -> Path:
    """Train (or resume training) and return the directory of the final policy."""
    d = setup(cfg.device)
    try:
        return _train(cfg, d)
    finally:
        teardown(d)


def observation_keys(policy: VLAPolicy, dataset: EpisodeDataset, target: str = "action") -> list[str]:
    """The dataset features the policy reads (PolicyRequirements.inputs: images, depth for Ego3D, state, goal),
    and the sub-goals when it is conditioned on them or learns to predict them."""
    keys = list(PolicyRequirements.of(policy.config).inputs())
    if policy.config.subgoal_conditioning != "none" or target == "subgoal":
        _require_subgoals(dataset)
        keys.append(SUBGOAL_KEY)
    missing = [k for k in keys if k not in dataset.features]
    if missing:
        raise ConfigError(
            f"{dataset.path} lacks features {missing} that the policy needs; it has {sorted(dataset.features)}"
        )
    return keys


def episodes_of_tasks(dataset: EpisodeDataset, tasks: list[str]) -> list[int] | None:
    """The indices of the episodes of `tasks` (None: every episode); a task the dataset lacks is named."""
    if not tasks:
        return None
    known = sorted({e.task for e in dataset.episodes})
    for task in tasks:
        if task not in known:
            raise unknown_name(f"task of {dataset.path}", task, known)
    return [i for i, e in enumerate(dataset.episodes) if e.task in tasks]


def _require_subgoals(dataset: EpisodeDataset) -> None:
    if SUBGOAL_KEY not in dataset.features:
        raise ConfigError(
            f"{dataset.path} has no {SUBGOAL_KEY!r} feature, which sub-goal conditioning and target=subgoal train "
            "on: build the keyframe dataset with `polyact data keyframes` from demonstrations that record sub-goals "
            "(rlbench_like's collector does)"
        )


def _check_run(out: Path, cfg: TrainConfig, d: Dist) -> None:
    """A resumed run must be the same run: refuse to continue one trained with other settings."""
    if claim_run_dir(out, cfg.resume_identity(), record=d.is_main) and d.is_main:
        write_text_atomic(out / "config.yaml", to_yaml(cfg))


def _build(cfg: TrainConfig, dataset: EpisodeDataset, resume: Path | None) -> VLAPolicy:
    if resume is not None:
        policy = VLAPolicy.from_pretrained(resume / "policy")
    else:
        if dataset.env_spec is None:
            raise ConfigError(f"{dataset.path} has no environment spec; record it with `polyact collect`")
        instructions = [i for per_task in dataset.tasks.values() for i in per_task]
        stats = dataset.stats
        if cfg.target == "subgoal":  # sub-goals are actions of the same space: normalise them by their own range
            _require_subgoals(dataset)
            stats = {**stats, "action": stats[SUBGOAL_KEY]}
        samples = None
        start = VLAPolicy.from_pretrained(cfg.init) if cfg.init else None
        if head_class(start.config.head.name if start else cfg.policy.head.name).fits_to_data:
            column = f"obs/{SUBGOAL_KEY}" if cfg.target == "subgoal" else "action"
            keys = [SUBGOAL_KEY] if cfg.target == "subgoal" else []
            samples = np.concatenate([dataset.episode_arrays(e.index, keys=keys)[column] for e in dataset.episodes])
        if start is not None:
            policy = policy_for_dataset(start, dataset, stats, samples, cfg.init)
            unknown = unknown_words(policy, instructions)
            if unknown:
                tqdm.write(f"{len(unknown)} instruction words are new to {cfg.init} and read as unknown: {unknown}")
        else:
            policy = build_policy(cfg.policy, dataset.env_spec, stats, instructions, samples)
    if cfg.subgoal_predictor and policy.subgoal_predictor is None:
        policy.attach_subgoal_predictor(VLAPolicy.from_pretrained(cfg.subgoal_predictor))
    return policy


def subgoal_targets(batch: dict[str, Any]) -> dict[str, Any]:
    """A loader batch whose actions are the sub-goals of its last observation step (target=subgoal)."""
    subgoal = batch[f"obs/{SUBGOAL_KEY}"][:, -1:]
    pad = torch.zeros(subgoal.shape[:2], dtype=torch.bool, device=subgoal.device)
    return {**batch, "action": subgoal, "action_is_pad": pad}


def _param_groups(policy: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norms, embeddings and learned tokens (1-D or named so)."""
    decay, no_decay = [], []
    for name, p in policy.named_parameters():
        if not p.requires_grad:
            continue
        plain = p.ndim < 2 or any(word in name for word in ("embed", "token", "norm", "query"))
        (no_decay if plain else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float, time_spent: float = 0.0) -> float:
    """The learning-rate multiplier: linear warmup from 0, then cosine decay to `min_ratio` over the
    steps after warm-up or, when `time_spent` (the fraction of a time budget used) is further along, over
    the time budget."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_spent))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _step_seed(seed: int, step: int, d: Dist) -> int:
    return (seed * 1_000_003 + step) * d.world_size + d.rank


def _train(cfg: TrainConfig, d: Dist) -> Path:
    out = Path(cfg.out)
    _check_run(out, cfg, d)
    if cfg.batch_size % d.world_size:
        raise ConfigError(f"batch_size {cfg.batch_size} is not divisible by the {d.world_size} processes")
    per_rank = cfg.batch_size // d.world_size

    # --- data ---------------------------------------------------------------------------------------
    dataset = EpisodeDataset(cfg.dataset, max_open_files=cfg.data_open_files, memory_budget=cfg.data_memory_mb << 20)
    resume = latest_checkpoint(out)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    policy = _build(cfg, dataset, resume).to(d.device).train()
    windows = WindowDataset(
        dataset,
        history=policy.config.history,
        chunk=policy.config.chunk,
        keys=observation_keys(policy, dataset, cfg.target),
        episodes=episodes_of_tasks(dataset, cfg.tasks),
        future=policy.config.future_frames,
        future_keys=[f"rgb/{cam}" for cam in policy.config.cameras],
    )
    slow = dataset.disk_read_reason(windows.keys)
    if slow and d.is_main:
        tqdm.write(
            f"windows are read frame by frame from disk, about 3x slower than from memory: {slow}; raise "
            "data_open_files (and ulimit -n) or data_memory_mb to hold the dataset in memory"
        )
    labels = windows.item_tasks() if cfg.balance_tasks else np.zeros(len(windows), dtype=np.int64)
    sampler = TaskBalancedSampler(labels, seed=cfg.seed, num_replicas=d.world_size, rank=d.rank)
    batches_per_epoch = len(sampler) // per_rank
    if batches_per_epoch < 1:
        raise ConfigError(f"{cfg.dataset} has {len(windows)} windows, fewer than one batch of {cfg.batch_size}")
    loader = DataLoader(
        windows,
        batch_size=per_rank,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate_windows,
        drop_last=True,
        pin_memory=d.device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
    )

    # --- model, optimiser, schedule -----------------------------------------------------------------
    model = wrap(policy, d, cfg.sharding)
    forward = torch.compile(model) if cfg.compile else model
    # The fused kernel reads each parameter's state once per step; the default for-each one makes a
    # pass per operation, which on a CPU costs 225 ms a step at 59M parameters against 47 (bench/README.md).
    # FSDP's sharded parameters on a CPU keep the for-each kernel.
    optimizer = torch.optim.AdamW(
        _param_groups(policy, cfg.optim.weight_decay),
        lr=cfg.optim.lr,
        betas=tuple(cfg.optim.betas),
        fused=d.device.type == "cuda" or cfg.sharding != "fsdp",
    )
    budget_s = 60 * cfg.max_minutes
    # the fraction of the time budget spent, the same on every rank: read at each log step, so the
    # learning rate follows the clock in steps of log_every
    time_spent = {"fraction": 0.0}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: warmup_cosine(
            s,
            cfg.optim.warmup_steps,
            cfg.steps,
            cfg.optim.min_lr_ratio,
            time_spent["fraction"] if cfg.optim.anneal_over == "minutes" else 0.0,
        ),
    )
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None
    per_task = None
    if cfg.multitask != "uniform":
        per_task = TaskGradients(policy, cfg.multitask, d, cfg.multitask_rho, cfg.sharding)
    start = 0
    carried_s = 0.0  # training time of the runs this one resumes, when the schedule runs on time
    if resume is not None:
        trainer_state = load_checkpoint(resume, model, optimizer, scheduler, ema)
        start = trainer_state["step"]
        if cfg.optim.anneal_over == "minutes":
            carried_s = trainer_state.get("elapsed_s", 0.0)
            time_spent["fraction"] = carried_s / budget_s
    sampler.load_state_dict(
        sampler.state_dict() | {"epoch": start // batches_per_epoch, "consumed": (start % batches_per_epoch) * per_rank}
    )
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and d.device.type == "cuda")
    autocast = torch.autocast(d.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    # --- logging (rank 0) ---------------------------------------------------------------------------
    log = metrics_file = None
    if d.is_main:
        from torch.utils.tensorboard import SummaryWriter

        log = SummaryWriter(str(out / "tb"))
        metrics_file = (out / "metrics.jsonl").open("a")
    bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", disable=not (cfg.progress and d.is_main))
    if d.is_main and resume is not None:
        tqdm.write(f"resumed from {resume} at step {start}")

    # --- the loop -----------------------------------------------------------------------------------
    # No step waits for the device: losses, gradient norms and divergence are kept there (TrainingWindow)
    # and read at each log or checkpoint step, before anything is logged or written.
    generator = torch.Generator(d.device)
    window_start = time.monotonic()
    began = window_start - carried_s
    window = TrainingWindow(d.device)
    iterator = iter(loader)
    step = start
    last_checkpoint = resume
    try:
        while step < cfg.steps:
            try:
                batch = next(iterator)
            except StopIteration:  # an epoch ended; the sampler has moved on to the next
                iterator = iter(loader)
                continue
            batch = _to_device(batch, d.device)
            if cfg.target == "subgoal":
                batch = subgoal_targets(batch)
            seed = _step_seed(cfg.seed, step, d)
            torch.manual_seed(seed)
            generator.manual_seed(seed)
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                if per_task is None:
                    loss, metrics = forward(batch, generator=generator)
                else:  # the same order of PCGrad's projections on every rank
                    loss, metrics = per_task.step(batch, generator, order_seed=cfg.seed * 1_000_003 + step)
            if per_task is None:
                loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or math.inf)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update()
            step += 1
            window.add(step, loss, grad_norm)
            bar.update(1)

            log_now = step % cfg.log_every == 0 or step == cfg.steps
            if not (log_now or step % cfg.checkpoint_every == 0):
                fault_point("train.step_done")
                continue
            reading = window.read(d)
            if reading.first_bad_step is not None:
                where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint yet"
                raise TrainingDivergedError(
                    f"training diverged at step {reading.first_bad_step}: a non-finite loss or gradient norm "
                    f"(last gradient norm {reading.grad_norm}); {where}. Lower optim.lr or check the "
                    "dataset's statistics (polyact data info)"
                )
            if log_now:
                elapsed = time.monotonic() - window_start
                record = {
                    **{f"head/{k}": float(v) for k, v in metrics.items()},  # this rank's last batch
                    "step": step,
                    "loss": reading.mean_loss,
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": reading.grad_norm,
                    "samples_per_s": reading.steps * cfg.batch_size / max(elapsed, 1e-9),
                }
                if d.is_main:
                    for key, value in record.items():
                        if key != "step":
                            log.add_scalar(f"train/{key}", value, step)
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                bar.set_postfix(loss=f"{record['loss']:.4f}", samples_s=f"{record['samples_per_s']:.0f}")
                window_start = time.monotonic()

            elapsed_s = max_over_ranks(time.monotonic() - began, d)
            out_of_time = budget_s > 0 and elapsed_s > budget_s
            time_spent["fraction"] = elapsed_s / budget_s if budget_s else 0.0
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
                last_checkpoint = save_checkpoint(
                    out,
                    step,
                    model,
                    policy,
                    optimizer,
                    scheduler,
                    sampler.state_dict(),
                    ema,
                    d,
                    cfg.keep_checkpoints,
                    elapsed_s,
                )
            fault_point("train.step_done")
            if out_of_time:
                if d.is_main:
                    tqdm.write(f"stopping at step {step}: max_minutes={cfg.max_minutes} reached")
                break
    finally:
        bar.close()
        if d.is_main:
            log.close()
            metrics_file.close()

    final = out / "policy"
    if ema is not None:
        with ema.applied():
            write_policy(model, policy, d, final)
    else:
        write_policy(model, policy, d, final)
    return final


def run(cfg: TrainConfig) -> Path:
    """`polyact train`."""
    final = train(cfg)
    print(f"policy saved to {final}")
    return final

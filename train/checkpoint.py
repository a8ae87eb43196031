"""Training checkpoints that a kill at any moment cannot tear, and the deployable policy directory.

    out/checkpoints/step_00001000/
        policy/              the deployable policy (EMA weights when EMA is on): VLAPolicy.from_pretrained
        weights.safetensors  the raw (non-averaged) weights
        trainer.pt           optimiser, scheduler and sampler state (tensors and plain types only)
    out/checkpoints/latest   the name of the newest complete checkpoint

A checkpoint is written into a hidden temporary directory, synced, renamed into place, and only then
named in `latest` (itself replaced atomically), so `latest` always names a complete checkpoint.
Random state is not stored: every step seeds its generators from (seed, step, rank), so a resumed run
draws exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from polyact.atomic import replace_dir_atomic, write_text_atomic
from polyact.errors import PolyactError
from polyact.faults import fault_point
from polyact.train.distributed import Dist, barrier

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
LATEST = "latest"


class CheckpointError(PolyactError):
    """A checkpoint directory that is missing or does not fit the run."""


def checkpoint_dir(out: Path) -> Path:
    return out / "checkpoints"


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None if it has none."""
    pointer = checkpoint_dir(out) / LATEST
    if not pointer.is_file():
        return None
    path = checkpoint_dir(out) / pointer.read_text().strip()
    if not (path / "trainer.pt").is_file():
        raise CheckpointError(f"{pointer} names {path}, which is not a complete checkpoint")
    return path


def _own_storage(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor with a storage of its own, as safetensors requires: tied weights (a VLM's input
    embedding and output layer) are written under both names."""
    seen: set[int] = set()
    out = {}
    for name, tensor in state.items():
        ptr = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone() if ptr in seen else tensor.contiguous()
        seen.add(ptr)
    return out


def write_policy(model: nn.Module, policy: nn.Module, d: Dist, directory: Path) -> None:
    """Save the (possibly sharded) model's current weights as a policy directory (collective call)."""
    state = get_model_state_dict(model, options=FULL)
    if d.is_main:
        from polyact.policies.vla import VLAPolicy

        copy = VLAPolicy(policy.config, load_pretrained_weights=False, env_spec=policy.env_spec)
        copy.load_state_dict(state)
        if policy.subgoal_predictor is not None:
            copy.attach_subgoal_predictor(policy.subgoal_predictor)
        copy.save_pretrained(directory)


def save_checkpoint(
    out: Path,
    step: int,
    model: nn.Module,
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    sampler_state: dict[str, Any],
    ema: Any,
    d: Dist,
    keep: int,
    elapsed_s: float = 0.0,
) -> Path:
    """Write checkpoint `step` (a collective call: every rank takes part, rank 0 writes); `elapsed_s`,
    the training time so far, lets a resumed run keep a time-based schedule where it was."""
    name = f"step_{step:08d}"
    final = checkpoint_dir(out) / name
    tmp = checkpoint_dir(out) / f".{name}.tmp"
    raw = get_model_state_dict(model, options=FULL)
    optim_state = get_optimizer_state_dict(model, optimizer, options=FULL)
    if d.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(_own_storage(raw), str(tmp / "weights.safetensors"))
    if ema is not None:
        with ema.applied():
            write_policy(model, policy, d, tmp / "policy")
    else:
        write_policy(model, policy, d, tmp / "policy")
    if d.is_main:
        trainer = {
            "step": step,
            "optimizer": optim_state,
            "scheduler": scheduler.state_dict(),
            "sampler": sampler_state,
            "elapsed_s": elapsed_s,
        }
        torch.save(trainer, tmp / "trainer.pt")
        fault_point("train.checkpoint_before_rename")
        replace_dir_atomic(tmp, final)
        write_text_atomic(checkpoint_dir(out) / LATEST, name + "\n")
        fault_point("train.checkpoint_saved")
        for old in sorted(checkpoint_dir(out).glob("step_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier(d)
    return final


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, ema: Any
) -> dict[str, Any]:
    """Restore weights, EMA, optimiser and scheduler from `path` on every rank; returns the trainer state."""
    trainer = torch.load(path / "trainer.pt", weights_only=True)
    if ema is not None:
        # the averaged weights are the checkpoint's policy directory; read it as a policy, since a VLM policy
        # keeps its base model and adapters beside model.safetensors, not in it
        from polyact.policies.policy_dir import load_pretrained

        averaged = load_pretrained(path / "policy").state_dict()
        with ema.applied():
            set_model_state_dict(model, averaged, options=StateDictOptions(full_state_dict=True))
            ema.capture()
    full = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, load_file(str(path / "weights.safetensors")), options=full)
    set_optimizer_state_dict(model, optimizer, trainer["optimizer"], options=full)
    scheduler.load_state_dict(trainer["scheduler"])
    return trainer

"""The pretrained-VLM policy (policy.backbone=vlm): OpenVLA's or SpatialVLA's scheme on any family of families.py.

    obs/rgb/<cam> (B, 1, H, W, 3), one image per camera ─┐
    instruction: "In: What action should the robot take to {instruction}?\\nOut:" ─┴─► VLM ─► H x T action tokens

Actions are normalised (q01/q99 by default) and written as tokens: head.name=uniform_bins, 256 uniform
bins per dimension as the last 256 ids of the vocabulary (OpenVLA, action_tokens.py, T = A);
head.name=adaptive_grid, one added token per step and part, a cell of the grid fitted to the training
actions (SpatialVLA, grid_tokens.py, T = 2 or 3). Training is the language model's cross-entropy on those
tokens alone (padded chunk steps excluded), inference decodes them greedily one after another. As in
OpenVLA the token schemes read the images and the instruction, not the proprioceptive state or goal vector.
head.name=flow (or diffusion, l1): pi0's action expert (expert.py) reads the VLM's KV cache and the
normalised state and predicts the flow's velocity (the diffusion's noise, the L1 chunk) under the trunk
heads' own rules (expert_heads.py), the prefix computed once a chunk.
vision.depth=true adds SpatialVLA's Ego3D encoding to the vision tower's patch features (ego3d.py).

It has VLAPolicy's interface (compute_loss / forward, predict_chunk, as_batch, save_pretrained,
from_pretrained, adapt_to_dataset), and `VLAPolicy(config)` with backbone=vlm builds it.

Policy directory (policy_dir.py): config.json (base path and content hash), env_spec.json,
model.safetensors (every tensor the base model does not supply: normalisation statistics, the action
expert and, unless frozen, the VLM's weights), vlm_base/ (the base's config, tokenizer and preprocessor files) and, with
LoRA, vlm_adapter/ (peft's adapter_config.json and adapter_model.safetensors, the adapters alone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from polyact.contract import EnvSpec
from polyact.errors import ConfigError, ContractError
from polyact.policies.config import PolicyConfig
from polyact.policies.heads.base import masked_mean, zero_padded
from polyact.policies.history import as_loader_batch
from polyact.policies.normalize import Normalizer
from polyact.policies.vision import cropped_intrinsics
from polyact.policies.vlm.action_tokens import ActionTokens
from polyact.policies.vlm.backbone import VLMBackbone
from polyact.policies.vlm.ego3d import VisionTowerEgo3D
from polyact.policies.vlm.expert import ActionExpert, Prefix
from polyact.policies.vlm.expert_heads import EXPERT_HEADS, TIME_PERIODS, ExpertRule
from polyact.policies.vlm.grid_tokens import GridTokens

BASE_DIR = "vlm_base"
ADAPTER_DIR = "vlm_adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class VLMPolicy(nn.Module):
    """A pretrained VLM fine-tuned to emit action tokens or to feed pi0's action expert; build with
    `build_policy` (config.backbone=vlm)."""

    def __init__(self, config: PolicyConfig, load_pretrained_weights: bool = True, env_spec: EnvSpec | None = None):
        super().__init__()
        config = config.resolved()
        config.check_complete()
        self.config = cfg = config
        self.env_spec = env_spec
        modes, shapes = {"action": cfg.action_normalization}, {"action": (cfg.action_dim,)}
        expert = cfg.head.name in EXPERT_HEADS
        if expert and cfg.state_dim:  # pi0's expert reads the state too
            modes["state"], shapes["state"] = "mean_std", (cfg.state_dim,)
        self.normalizer = Normalizer(modes, shapes)
        self.vlm = VLMBackbone(cfg.vlm, cfg.head, cfg.action_dim, load_pretrained_weights)
        self.ego3d: VisionTowerEgo3D | None = None
        if cfg.vision.depth:  # SpatialVLA's Ego3D added to the vision tower's patch features
            vision = self.vlm.family.config.vision_config
            self.ego3d = VisionTowerEgo3D(cfg.vision, self.vlm.family.vision_tower(self.vlm.base_model), vision)
        self.expert: ActionExpert | None = None
        if expert:
            text = self.vlm.family.config.get_text_config()
            periods = TIME_PERIODS[cfg.head.name]
            self.expert = ActionExpert(
                text, cfg.vlm.expert_width, cfg.chunk, cfg.action_dim, cfg.state_dim, periods, self.vlm.num_layers
            )
            self.rule = ExpertRule(cfg.head)
        cfg.vlm.base_sha256 = self.vlm.sha256
        object.__setattr__(self, "subgoal_predictor", None)

    @property
    def head(self) -> ActionTokens | GridTokens | ActionExpert:
        """The "head": the vocabulary's action ids (OpenVLA's bins, or SpatialVLA's grid cells, fitted to data),
        or pi0's action expert."""
        return self.expert if self.expert is not None else self.vlm.tokens

    @property
    def device(self) -> torch.device:
        return next(self.normalizer.buffers()).device

    def attach_subgoal_predictor(self, predictor: Any) -> None:
        raise ConfigError("policy.backbone=vlm is not conditioned on sub-goals")

    def merge_lora(self) -> None:
        """Fold the LoRA adapters into the weights for inference; save the policy before, not after."""
        self.vlm.merge_lora()

    def shard_units(self) -> list[nn.Module]:
        """The modules FSDP shards one by one (train/distributed.py): every decoder layer of the language
        model, found by the family's decoder layer class, so a layer's weights are gathered only for its turn."""
        layer = self.vlm.family.decoder_layer_class(self.vlm.base_model)
        return [m for m in self.vlm.model.modules() if isinstance(m, layer)]

    # --- inputs -------------------------------------------------------------------------------------
    def _get(self, batch: Mapping[str, Any], key: str) -> torch.Tensor:
        if key not in batch:
            raise ContractError(f"batch lacks {key!r}; it has {sorted(batch)}")
        return torch.as_tensor(batch[key], device=self.device)

    def _observation(self, batch: Mapping[str, Any]) -> tuple[list[str], torch.Tensor]:
        """The instructions and the last step's images (B, C, H, W, 3) uint8, cameras in config order."""
        instructions = batch.get("instruction")
        if instructions is None:
            raise ContractError("batch lacks 'instruction' (a list of B strings)")
        crop = self.config.vision.crop
        images = []
        for cam in self.config.cameras:
            rgb = self._get(batch, f"obs/rgb/{cam}")[:, -1]  # (B, H, W, 3)
            if crop:
                top, left, height, width = crop
                rgb = rgb[:, top : top + height, left : left + width]
            images.append(rgb)
        return list(instructions), torch.stack(images, dim=1)

    def _depth(self, batch: Mapping[str, Any]) -> AbstractContextManager[None]:
        """With vision.depth, the last step's depth (B, C, H, W) and intrinsics (B, C, 3, 3) for the vision
        tower's Ego3D hook (ego3d.py) during the block; `vision.crop` crops depth and moves K's principal
        point as it crops the images."""
        if self.ego3d is None:
            return nullcontext()
        crop = self.config.vision.crop
        depths, intrinsics = [], []
        for cam in self.config.cameras:
            depth = self._get(batch, f"obs/depth/{cam}")[:, -1].float()  # (B, H, W)
            k = self._get(batch, f"obs/intrinsics/{cam}")[:, -1].float()  # (B, 3, 3)
            if crop:
                top, left, height, width = crop
                depth = depth[:, top : top + height, left : left + width]
                k = cropped_intrinsics(k, crop)
            depths.append(depth)
            intrinsics.append(k)
        return self.ego3d.geometry(torch.stack(depths, dim=1), torch.stack(intrinsics, dim=1))

    def as_batch(self, obs: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        return as_loader_batch(obs, self.config.history)

    # --- training and inference ---------------------------------------------------------------------
    def compute_loss(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The language model's cross-entropy on the chunk's action tokens (padded steps excluded), or the
        expert's loss (flow matching, diffusion or L1)."""
        with self._depth(batch):
            return self._loss(batch, generator)

    def _loss(
        self, batch: Mapping[str, Any], generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.expert is not None:
            return self._expert_loss(batch, generator)
        actions = self._get(batch, "action").float()  # (B, H, A)
        pad = self._get(batch, "action_is_pad").bool()  # (B, H)
        h, a, t = self.config.chunk, self.config.action_dim, self.head.tokens_per_step
        if actions.shape[1:] != (h, a):
            raise ContractError(
                f"batch actions have shape {tuple(actions.shape)}; the policy predicts chunks of ({h}, {a})"
            )
        targets = self.head.encode(zero_padded(self.normalizer.normalize("action", actions), pad)).flatten(1)
        instructions, images = self._observation(batch)
        logits = self.vlm.action_logits(instructions, images, targets)  # (B, H*T, V)
        ce = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none")  # (B, H*T)
        loss = masked_mean(ce.view(-1, h, t), pad)
        with torch.no_grad():
            accuracy = masked_mean((logits.argmax(-1) == targets).float().view(-1, h, t), pad)
        return loss, {"loss": loss.detach(), "token_accuracy": accuracy.detach()}

    def _state(self, batch: Mapping[str, Any]) -> torch.Tensor | None:
        """The last step's normalised state (B, S) for the expert, None without one."""
        if "state" not in self.normalizer.modes:
            return None
        return self.normalizer.normalize("state", self._get(batch, "obs/state")[:, -1].float())

    def _expert_model(self, batch: Mapping[str, Any]) -> tuple[Any, Prefix]:
        """The expert as a model of (x, time) for this batch, the VLM run once on its images and instructions."""
        prefix = self.vlm.prefix(*self._observation(batch))
        state, rotary = self._state(batch), self.vlm.rotary
        return (lambda x, t: self.expert(x, t, state, prefix, rotary)), prefix

    def _expert_loss(
        self, batch: Mapping[str, Any], generator: torch.Generator | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        actions = self.normalizer.normalize("action", self._get(batch, "action").float())
        pad = self._get(batch, "action_is_pad").bool()
        if actions.shape[1:] != (self.config.chunk, self.config.action_dim):
            raise ContractError(
                f"batch actions have shape {tuple(actions.shape)}; the policy predicts chunks of "
                f"({self.config.chunk}, {self.config.action_dim})"
            )
        model, prefix = self._expert_model(batch)
        loss, metrics = self.rule.loss(model, actions, pad, generator)
        return prefix.tie_to_loss(loss), metrics

    forward = compute_loss  # so DDP / FSDP wrappers can call the module

    def predict_chunk(
        self, obs: Any, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> np.ndarray:
        """Action chunks (B, H, A) in raw action units: H*T greedy action tokens (T per step; greedy decoding
        draws nothing, so `generator` and `noise` are unused), or the expert's chunk from `noise` (B, H, A) or
        fresh noise: head.sample_steps Euler (flow) or DDIM (diffusion) steps over one prefix cache."""
        batch = self.as_batch(obs)
        with self._depth(batch):
            return self._predict(batch, generator, noise)

    def _predict(
        self, batch: Mapping[str, Any], generator: torch.Generator | None, noise: torch.Tensor | None
    ) -> np.ndarray:
        if self.expert is not None:
            with torch.inference_mode():
                model, _ = self._expert_model(batch)
                b, cfg = len(batch["instruction"]), self.config
                if noise is None:
                    noise = torch.randn((b, cfg.chunk, cfg.action_dim), generator=generator, device=self.device)
                normalized = self.rule.sample(model, torch.as_tensor(noise, device=self.device))
                return self.normalizer.unnormalize("action", normalized.float()).cpu().numpy()
        instructions, images = self._observation(batch)
        h, t = self.config.chunk, self.head.tokens_per_step
        with torch.inference_mode():
            ids = self.vlm.decode(instructions, images, h * t)
            normalized = self.head.decode(ids.view(-1, h, t)).float()  # (B, H, A)
            chunk = self.normalizer.unnormalize("action", normalized)
        return chunk.float().cpu().numpy()

    # --- statistics ---------------------------------------------------------------------------------
    def load_statistics(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        self.normalizer.load_statistics(stats)

    def adapt_to_dataset(self, stats: Mapping[str, Mapping[str, Any]], action_samples: Any = None) -> None:
        """A new dataset's statistics; grid tokens are re-discretised on its raw actions (N, A), which moves
        their embeddings onto the new grid (grid_tokens.py)."""
        self.load_statistics(stats)
        if self.head.fits_to_data:
            self.head.fit(self._normalized_samples(action_samples), first=False)

    def fit_head(self, action_samples: Any) -> None:
        """Fit the grid tokens' grid on the training dataset's raw actions (N, A)."""
        if not self.head.fits_to_data:
            raise ConfigError("OpenVLA's uniform action tokens have nothing to fit")
        self.head.fit(self._normalized_samples(action_samples))

    def _normalized_samples(self, action_samples: Any) -> torch.Tensor:
        if action_samples is None:
            raise ConfigError("head.name=adaptive_grid fits its grid to the dataset's actions: pass action_samples")
        samples = torch.as_tensor(np.asarray(action_samples, dtype=np.float32), device=self.device)
        if samples.ndim != 2 or samples.shape[1] != self.config.action_dim:
            raise ConfigError(f"action_samples must be (N, {self.config.action_dim}), got {tuple(samples.shape)}")
        return self.normalizer.normalize("action", samples)

    # --- checkpoints --------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        from polyact.policies.policy_dir import save_pretrained

        return save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> VLMPolicy:
        from polyact.policies.policy_dir import load_pretrained

        return load_pretrained(directory, map_location)

    def _supplied(self) -> set[str]:
        """State-dict keys the policy directory does not hold in model.safetensors: frozen base weights
        (read from the base directory again, hash-checked), LoRA adapters (vlm_adapter/), and second names
        of tied weights (the embedding shared with the output layer)."""
        seen: set[int] = set()
        keys = set()
        params = dict(self.named_parameters(remove_duplicate=False))
        for name, tensor in self.state_dict(keep_vars=True).items():
            ptr = tensor.data_ptr()
            frozen = name.startswith("vlm.") and name in params and not params[name].requires_grad
            if ptr in seen or frozen or (self._lora and "lora_" in name):
                keys.add(name)
            seen.add(ptr)
        return keys

    @property
    def _lora(self) -> bool:
        return self.vlm.lora

    def save_files(self, directory: Path, weights_file: str, metadata: dict[str, str]) -> dict[str, Any]:
        """Write the base's small files, the adapters and the policy's own tensors into `directory`; returns
        the config (as a dict) to save beside them."""
        if self.vlm.merged:
            raise ConfigError("save the policy before merge_lora(): a merged policy no longer has its adapters")
        self.vlm.save_files(directory / BASE_DIR)
        if self._lora:
            self.vlm.model.save_pretrained(str(directory / ADAPTER_DIR), save_embedding_layers=False)
        supplied = self._supplied()
        own = {k: v.detach().contiguous() for k, v in self.state_dict().items() if k not in supplied}
        save_file(own, str(directory / weights_file), metadata=metadata)
        cfg = self.config.to_dict()
        cfg["vlm"]["files"] = BASE_DIR
        return cfg

    def load_files(self, directory: Path, weights_file: str) -> None:
        """The counterpart of `save_files` on a policy built from the same config."""
        if self._lora:
            import peft

            adapter = load_file(str(directory / ADAPTER_DIR / ADAPTER_WEIGHTS))
            result = peft.set_peft_model_state_dict(self.vlm.model, adapter)
            missing = [k for k in result.missing_keys if "lora_" in k]
            if missing or result.unexpected_keys:
                raise ConfigError(
                    f"{directory / ADAPTER_DIR} does not fit the policy's LoRA config: missing {missing[:3]}, "
                    f"unexpected {list(result.unexpected_keys)[:3]}"
                )
        result = self.load_state_dict(load_file(str(directory / weights_file)), strict=False)
        missing = sorted(set(result.missing_keys) - self._supplied())
        if missing or result.unexpected_keys:
            raise ConfigError(
                f"{directory / weights_file} does not fit the policy: missing {missing[:5]}, unexpected "
                f"{result.unexpected_keys[:5]}"
            )


def load_vlm_policy(directory: Path, cfg: PolicyConfig, env_spec: EnvSpec | None, weights_file: str) -> VLMPolicy:
    """The VLM policy saved in `directory`: the base model's weights are read again (and hash-checked)
    unless every VLM weight was trained and saved (finetune=full)."""
    if not Path(cfg.vlm.files).is_absolute():
        cfg.vlm.files = str(directory / cfg.vlm.files)
    policy = VLMPolicy(cfg, load_pretrained_weights=cfg.vlm.finetune != "full", env_spec=env_spec)
    policy.load_files(directory, weights_file)
    return policy

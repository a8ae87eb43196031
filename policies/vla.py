"""The VLA policy: camera, instruction and proprioception tokens -> transformer trunk -> action head.

    obs/rgb/<cam> (B,h,H,W,3) uint8 ──► CameraTokens (conv / ViT / pretrained, + Ego3D from depth) ─┐
    instruction list[str] ───────────► InstructionEncoder (words / bytes / pretrained, cached) ──────┤
    obs/state (B,h,S), obs/goal ──────► Linear per history step ─────────────────────────────────────┤
    sub-goal (x, y, z, ..., gripper) ─► GravMAD's cost and gripper maps, two more image channels (gravmap.py)
                                                                                                     ▼
                                    Trunk: [context tokens | R learned readout tokens] -> readouts (B, R, D)
                                                                                                     ▼
                                    ActionHead: loss(readout, normalised chunk, pad) / sample -> (B, H, A)

A state-only policy (PolicyConfig.state_only) has no CameraTokens: its context is the instruction,
state and goal tokens.

The contract is two calls, as in diffusion_policy's BaseImagePolicy and openpi's model:

    compute_loss(batch) -> (loss, metrics)       a training batch of the window loader (docs/policies.md)
    predict_chunk(obs)  -> np.ndarray (B, H, A)  raw action units; obs is one contract observation, a
                                                 batch or list of them, or a loader batch with history

Normalisation (statistics as buffers) and the head's fits live inside the module, so `save_pretrained`
/ `from_pretrained` (checkpoint.py) carry them with the weights.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange, repeat
from torch import nn

from polyact.contract import SUBGOAL_KEY, EnvSpec, PolicyRequirements
from polyact.errors import ConfigError, ContractError, unknown_name
from polyact.policies.config import PolicyConfig
from polyact.policies.gravmap import CHANNELS as GRAVMAP_CHANNELS
from polyact.policies.gravmap import backproject_pixels, gravmap
from polyact.policies.heads import make_head
from polyact.policies.heatmap import HeatmapDecoder, decode_translation, heatmap_targets, project
from polyact.policies.history import as_loader_batch
from polyact.policies.language import InstructionEncoder, build_vocab
from polyact.policies.normalize import Normalizer
from polyact.policies.trunk import Trunk
from polyact.policies.vision import CameraTokens, RandomShift, cropped_intrinsics, sample_shifts

TRANSLATION_MARGIN = 0.03  # metres the heatmap search box reaches beyond the training targets' range
FUTURE_PIXELS = 4  # the future head predicts a FUTURE_PIXELS x FUTURE_PIXELS RGB patch per image token


@dataclasses.dataclass
class CameraView:
    """What the heatmap decoder needs of one camera's last observation step (B = batch)."""

    stages: list[torch.Tensor]  # the conv encoder's stage outputs, finest first, each (B, C_i, h_i, w_i)
    image: torch.Tensor  # (B, C, H, W): normalised RGB, the sub-goal maps if any, scaled depth if read
    intrinsics: torch.Tensor  # (B, 3, 3), of the image as cropped / shifted
    extrinsics: torch.Tensor  # (B, 4, 4), camera to world
    tokens: torch.Tensor | None = None  # (B, g*g, D): the trunk's outputs for its image tokens


class VLAPolicy(nn.Module):
    """A vision-language-action policy; build one with `build_policy` or load one with `from_pretrained`."""

    def __new__(cls, config: PolicyConfig, *args: Any, **kwargs: Any) -> Any:
        """A config with `backbone="vlm"` builds the pretrained-VLM policy (policies/vlm/policy.py), which has
        this class's interface, so training, checkpoints, evaluation and serving build it unchanged."""
        if config.backbone == "vlm":
            from polyact.policies.vlm.policy import VLMPolicy

            return VLMPolicy(config, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, config: PolicyConfig, load_pretrained_weights: bool = True, env_spec: EnvSpec | None = None):
        super().__init__()
        config = config.resolved()
        config.check_complete()
        self.config = cfg = config
        self.env_spec = env_spec  # the environment it acts in, saved beside the weights (policy_dir.py)
        modes = {"action": cfg.action_normalization, "state": "mean_std"}
        shapes = {"action": (cfg.action_dim,), "state": (cfg.state_dim,)}
        if cfg.goal_dim:
            modes["goal"], shapes["goal"] = "mean_std", (cfg.goal_dim,)
        if cfg.vision.encoder != "pretrained":  # a pretrained backbone brings its own image normalisation
            for cam in cfg.cameras:
                modes[f"rgb/{cam}"], shapes[f"rgb/{cam}"] = "mean_std", (3,)
        self.normalizer = Normalizer(modes, shapes)
        # a state-only policy (config.state_only) has no camera and no image encoder
        self.images = CameraTokens(cfg, load_pretrained_weights) if cfg.cameras else None
        self.text = InstructionEncoder(cfg, load_pretrained_weights)
        self.state_proj = nn.Linear(cfg.state_dim, cfg.width)
        self.goal_proj = nn.Linear(cfg.goal_dim, cfg.width) if cfg.goal_dim else None
        self.step_embed = nn.Parameter(torch.randn(cfg.history, cfg.width) * 0.02)
        self.type_embed = nn.Parameter(torch.randn(4, cfg.width) * 0.02)  # text, image, state, goal
        self.head = make_head(cfg.head, cfg.width, cfg.chunk, cfg.action_dim, cfg.attention_heads)
        self.trunk = Trunk(cfg.width, cfg.depth, cfg.attention_heads, self.head.num_readouts, cfg.dropout)
        self.shift = RandomShift(cfg.vision.random_shift) if cfg.vision.random_shift and cfg.cameras else None
        # GR-1's future-frame prediction, an auxiliary loss (config.future_frames steps ahead)
        self.future_head = nn.Linear(cfg.width, 3 * FUTURE_PIXELS**2) if cfg.future_frames else None
        self.heatmap = None
        if cfg.translation == "heatmap":
            image_channels = 3 + int(cfg.vision.depth) + self._gravmap_channels
            self.heatmap = HeatmapDecoder(cfg.width, list(cfg.vision.channels), image_channels)
            # the box the translation is searched in: the training targets' range (set_translation_box)
            self.register_buffer("translation_box", torch.zeros(2, 3))
        # what gives a sub-goal conditioned policy its sub-goal at inference (attach_subgoal_predictor); kept
        # out of the module tree, so that it is saved as a policy of its own (policy_dir.py)
        object.__setattr__(self, "subgoal_predictor", None)
        # convs run channels-last on the CPU (oneDNN's fast layout): the uint8 input already is, as a view
        self.channels_last = True
        if cfg.vision.encoder == "conv" and self.images is not None:
            self.images.encoders.to(memory_format=torch.channels_last)
            if self.heatmap is not None:
                self.heatmap.to(memory_format=torch.channels_last)

    @property
    def device(self) -> torch.device:
        return self.step_embed.device

    @property
    def _gravmap_channels(self) -> int:
        return GRAVMAP_CHANNELS if self.config.subgoal_conditioning == "gravmap" else 0

    def attach_subgoal_predictor(self, predictor: VLAPolicy) -> None:
        """Give a sub-goal conditioned policy the policy that predicts its sub-goals when the observation
        brings none (evaluation, serving): one trained with `target=subgoal` on the same cameras and history."""
        if self.config.subgoal_conditioning == "none":
            raise ConfigError("this policy is not conditioned on sub-goals (subgoal_conditioning='none')")
        p, c = predictor.config, self.config
        if p.chunk != 1 or p.action_dim != c.action_dim or p.history != c.history:
            raise ConfigError(
                f"a sub-goal predictor predicts one sub-goal of the policy's action size {c.action_dim} from "
                f"{c.history} observation steps; this one predicts chunks of {p.chunk} x {p.action_dim} from "
                f"{p.history}"
            )
        extra = set(PolicyRequirements.of(p).inputs()) - set(PolicyRequirements.of(c).inputs())
        if extra:
            raise ConfigError(f"the sub-goal predictor reads {sorted(extra)}, which the policy's observations lack")
        object.__setattr__(self, "subgoal_predictor", predictor.to(self.device).eval())

    def _subgoal(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The sub-goal (B, A) of the last observation step: the batch's own (training windows of a dataset
        with the `subgoal` feature; an environment's sub-goal oracle at evaluation), which wins over the
        attached predictor's, or else the predictor's."""
        key = f"obs/{SUBGOAL_KEY}"
        if key in batch:
            return self._get(batch, key).float()[:, -1]
        if self.subgoal_predictor is None:
            raise ContractError(
                f"this policy is conditioned on sub-goals: the batch needs {key!r} (a dataset built with sub-goals), "
                "or the policy a sub-goal predictor (attach_subgoal_predictor; polyact train subgoal_predictor=DIR)"
            )
        return torch.as_tensor(self.subgoal_predictor.predict_chunk(batch)[:, 0], device=self.device)

    def _subgoal_maps(
        self, subgoal: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor, extrinsics: torch.Tensor
    ) -> torch.Tensor:
        """GravMAD's maps (B*h, 2, H, W) of `subgoal` (B, A), over (B*h)-stacked depth and camera poses."""
        points = backproject_pixels(depth.clamp(0.0, self.config.vision.ego3d_max_depth), intrinsics, extrinsics)
        subgoal = subgoal.repeat_interleave(depth.shape[0] // subgoal.shape[0], dim=0)
        return gravmap(points, subgoal[:, :3], (subgoal[:, -1] <= 0).float())  # gripper > 0 closes

    # --- encoding -----------------------------------------------------------------------------------
    def _get(self, batch: Mapping[str, Any], key: str) -> torch.Tensor:
        if key not in batch:
            raise ContractError(f"batch lacks {key!r}; it has {sorted(batch)}")
        return torch.as_tensor(batch[key], device=self.device)

    def _crop(self, images: torch.Tensor) -> torch.Tensor:
        """(B, h, H, W, ...) -> the `vision.crop` window (a view), or the images as they are."""
        if not self.config.vision.crop:
            return images
        top, left, height, width = self.config.vision.crop
        return images[:, :, top : top + height, left : left + width]

    def _camera(
        self,
        batch: Mapping[str, Any],
        cam: str,
        generator: torch.Generator | None,
        subgoal: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, CameraView | None]:
        """(B, h*g*g, D) tokens of one camera over the history, and with heatmap translation what its
        decoder needs of the last step; `subgoal` (B, A) is drawn into the image as GravMAD's maps."""
        rgb = self._crop(self._get(batch, f"obs/rgb/{cam}"))  # (B, h, H, W, 3) uint8
        b, h = rgb.shape[:2]
        x = rearrange(rgb, "b t y x c -> (b t) c y x").float()  # a channels-last view: no copy
        if not self.channels_last:
            x = x.contiguous()
        if self.images.pretrained:
            x = x / 255.0
        else:
            mean, std = self.normalizer.stat(f"rgb/{cam}", "mean"), self.normalizer.stat(f"rgb/{cam}", "std")
            std = torch.where(std > 1e-6, std, torch.ones_like(std))  # as Normalizer's mean_std mode
            x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        depth = intrinsics = None
        if self.config.vision.depth:
            depth = rearrange(self._crop(self._get(batch, f"obs/depth/{cam}")).float(), "b t y x -> (b t) y x")
        if self.config.vision.depth or self.heatmap is not None or subgoal is not None:
            intrinsics = rearrange(self._get(batch, f"obs/intrinsics/{cam}").float(), "b t i j -> (b t) i j")
            if self.config.vision.crop:
                intrinsics = cropped_intrinsics(intrinsics, self.config.vision.crop)
        if self.training and self.shift is not None:
            # one crop offset per sample and camera, the same over its history (DrQ on frame stacks)
            shifts = repeat(sample_shifts(b, self.shift.pad, generator, self.device), "b two -> (b t) two", t=h)
            x = self.shift(x, shifts)
            if depth is not None:
                depth = self.shift(depth[:, None], shifts)[:, 0]
            if intrinsics is not None:
                intrinsics = self.shift.shift_intrinsics(intrinsics, shifts)
        extrinsics = None
        if self.heatmap is not None or subgoal is not None:
            extrinsics = rearrange(self._get(batch, f"obs/extrinsics/{cam}").float(), "b t i j -> (b t) i j")
        if subgoal is not None:
            maps = self._subgoal_maps(subgoal, depth, intrinsics, extrinsics)
            x = torch.cat([x, maps.to(x.dtype)], dim=1).contiguous(memory_format=torch.channels_last)
        stages: list[torch.Tensor] | None = [] if self.heatmap is not None else None
        tokens = self.images(cam, x, depth, intrinsics, stages)  # (B*h, g*g, D)
        tokens = rearrange(tokens, "(b t) n d -> b t n d", b=b) + self.step_embed[:, None] + self.type_embed[1]
        view = None
        if stages is not None:
            last = lambda t: rearrange(t, "(b t) ... -> b t ...", b=b)[:, -1]  # noqa: E731
            image = x if depth is None else torch.cat([x, self._depth_channel(depth)[:, None]], dim=1)
            view = CameraView([last(s) for s in stages], last(image), last(intrinsics), last(extrinsics))
        return rearrange(tokens, "b t n d -> b (t n) d"), view

    def _depth_channel(self, depth: torch.Tensor) -> torch.Tensor:
        """Depth as an input channel of the heatmap decoder: clamped and scaled as Ego3D scales it."""
        v = self.config.vision
        return depth.clamp(0.0, v.ego3d_max_depth) / v.ego3d_scale

    def encode(self, batch: Mapping[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch in the loader's layout -> readout tokens (B, R, D)."""
        return self._encode(batch, generator)[0]

    def _encode(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None, image_outputs: bool = False
    ) -> tuple[torch.Tensor, list[CameraView], list[torch.Tensor]]:
        """Readout tokens (B, R, D); with heatmap translation each camera's view with its trunk tokens; and
        with `image_outputs` (or heatmaps) the trunk's outputs for each camera's last-step image tokens."""
        cfg = self.config
        obs_pad = self._get(batch, "obs_is_pad").bool()  # (B, h)
        if obs_pad.shape[1] != cfg.history:
            raise ContractError(f"batch has {obs_pad.shape[1]} history steps; the policy was built for {cfg.history}")
        instructions = batch.get("instruction")
        if instructions is None:
            raise ContractError("batch lacks 'instruction' (a list of B strings)")
        text, text_pad = self.text(list(instructions))
        parts, pads, views = [text + self.type_embed[0]], [text_pad], []
        subgoal = self._subgoal(batch) if cfg.subgoal_conditioning != "none" else None
        for cam in cfg.cameras:
            tokens, view = self._camera(batch, cam, generator, subgoal)
            parts.append(tokens)
            pads.append(repeat(obs_pad, "b t -> b (t n)", n=tokens.shape[1] // cfg.history))
            if view is not None:
                views.append(view)
        state = self.normalizer.normalize("state", self._get(batch, "obs/state").float())
        if self.training and cfg.state_noise:
            state = state + cfg.state_noise * torch.randn(state.shape, generator=generator, device=state.device)
        parts.append(self.state_proj(state) + self.step_embed + self.type_embed[2])
        pads.append(obs_pad)
        if self.goal_proj is not None:
            goal = self.normalizer.normalize("goal", self._get(batch, "obs/goal").float())
            parts.append(self.goal_proj(goal) + self.step_embed + self.type_embed[3])
            pads.append(obs_pad)
        context = torch.cat(parts, dim=1)
        if not (views or image_outputs):
            return self.trunk(context, torch.cat(pads, dim=1)), views, []
        readout, outputs = self.trunk(context, torch.cat(pads, dim=1), with_context=True)
        start, per_camera = text.shape[1], parts[1].shape[1]
        last_step = per_camera // cfg.history
        ends = [start + (i + 1) * per_camera for i in range(len(cfg.cameras))]
        cameras = [outputs[:, end - last_step : end] for end in ends]  # the last history step's image tokens
        for view, tokens in zip(views, cameras, strict=False):
            view.tokens = tokens
        return readout, views, cameras

    def _heatmap_logits(self, views: list[CameraView]) -> torch.Tensor:
        """(B, cameras, hh*hw + 1) log-probabilities over each camera's heatmap and "not in view"."""
        logits = [self.heatmap(v.tokens, v.stages, v.image) for v in views]
        return torch.stack(logits, dim=1).log_softmax(-1)

    def _heatmap_hw(self, views: list[CameraView]) -> tuple[int, int]:
        finest = views[0].stages[0]
        return 2 * finest.shape[-2], 2 * finest.shape[-1]

    def _heatmap_loss(self, views: list[CameraView], target: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each camera's heatmap against the target (B, 3)'s projection, over unpadded samples."""
        log_probs = self._heatmap_logits(views)
        image_hw, heatmap_hw = tuple(views[0].image.shape[-2:]), self._heatmap_hw(views)
        projected = [project(target[:, None], v.intrinsics, v.extrinsics)[:, 0] for v in views]
        targets = torch.stack([heatmap_targets(p, image_hw, heatmap_hw) for p in projected], dim=1)
        per_sample = -(targets * log_probs).sum(-1).mean(1)
        keep = (~pad).float()
        return (per_sample * keep).sum() / keep.sum().clamp(min=1.0)

    def _heatmap_translation(self, views: list[CameraView]) -> tuple[torch.Tensor, torch.Tensor]:
        """The world point (B, 3) the heatmaps agree on best, and (B,) whether any camera sees it."""
        return decode_translation(
            self._heatmap_logits(views),
            self._heatmap_hw(views),
            tuple(views[0].image.shape[-2:]),
            torch.stack([v.intrinsics for v in views], dim=1),
            torch.stack([v.extrinsics for v in views], dim=1),
            self.translation_box,
        )

    # --- training -----------------------------------------------------------------------------------
    def compute_loss(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss on a loader batch (raw actions; padded steps excluded) and metrics."""
        actions = self._get(batch, "action").float()  # (B, H, A)
        pad = self._get(batch, "action_is_pad").bool()  # (B, H)
        if actions.shape[1:] != (self.config.chunk, self.config.action_dim):
            raise ContractError(
                f"batch actions have shape {tuple(actions.shape)}; the policy predicts chunks of "
                f"({self.config.chunk}, {self.config.action_dim})"
            )
        readout, views, cameras = self._encode(batch, generator, image_outputs=self.future_head is not None)
        loss, metrics = self.head.loss(readout, self.normalizer.normalize("action", actions), pad, generator)
        if views:
            heatmap_ce = self._heatmap_loss(views, actions[:, 0, :3], pad[:, 0])
            loss, metrics = loss + heatmap_ce, {**metrics, "heatmap_ce": heatmap_ce.detach()}
        if self.future_head is not None:
            future = self._future_loss(cameras, batch)
            loss, metrics = loss + self.config.future_weight * future, {**metrics, "future_mse": future.detach()}
        return loss, metrics

    def prediction_entropy(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """(B,) mean entropy (nats) of what the policy predicts as distributions: the head's action tokens and,
        with heatmap translation, each camera's heatmap. AdaMerging minimises it on unlabelled inputs."""
        if not (self.head.predicts_distribution or self.config.translation == "heatmap"):
            raise ConfigError(
                f"the {self.config.head.name} head predicts no distribution over actions and the translation "
                "comes from it (policy.translation=head): an entropy needs a token head (uniform_bins, "
                "adaptive_grid) or policy.translation=heatmap"
            )
        readout, views, _ = self._encode(batch)
        parts = [self.head.entropy(readout)] if self.head.predicts_distribution else []
        if views:
            log_probs = self._heatmap_logits(views)  # (B, cameras, pixels + 1)
            parts.append(-(log_probs.exp() * log_probs).sum(-1).mean(1))
        return torch.stack(parts).mean(0)

    def future_targets(self, batch: Mapping[str, Any], cam: str) -> torch.Tensor:
        """Camera `cam`'s frame `future_frames` steps ahead as the future head predicts it: normalised RGB,
        area-downsampled so that each of the g x g image tokens owns a FUTURE_PIXELS^2 patch, (B, g*g, 3 p^2)."""
        g, p = self.config.vision.grid, FUTURE_PIXELS
        frames = self._crop(self._get(batch, f"future/rgb/{cam}")[:, None])[:, 0]  # (B, H, W, 3) uint8
        x = rearrange(frames, "b y x c -> b c y x").float()
        if not self.images.pretrained:
            mean, std = self.normalizer.stat(f"rgb/{cam}", "mean"), self.normalizer.stat(f"rgb/{cam}", "std")
            x = (x - mean.view(1, 3, 1, 1)) / torch.where(std > 1e-6, std, torch.ones_like(std)).view(1, 3, 1, 1)
        else:
            x = x / 255.0
        x = torch.nn.functional.interpolate(x, size=(g * p, g * p), mode="area")
        return rearrange(x, "b c (gh p1) (gw p2) -> b (gh gw) (p1 p2 c)", p1=p, p2=p)

    def _future_loss(self, cameras: list[torch.Tensor], batch: Mapping[str, Any]) -> torch.Tensor:
        """GR-1's auxiliary objective: each image token's output predicts its patch of the frame
        `future_frames` steps ahead; mean squared error over cameras and windows whose future exists."""
        keep = (~self._get(batch, "future_is_pad").bool()).float()  # (B,)
        errors = [
            (self.future_head(tokens) - self.future_targets(batch, cam)).square().mean(dim=(1, 2))
            for cam, tokens in zip(self.config.cameras, cameras, strict=True)
        ]
        per_sample = torch.stack(errors).mean(0)
        return (per_sample * keep).sum() / keep.sum().clamp(min=1.0)

    forward = compute_loss  # so DDP / FSDP wrappers can call the module

    # --- inference ----------------------------------------------------------------------------------
    def as_batch(self, obs: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        """A loader-layout batch of any observation form (history.as_loader_batch)."""
        return as_loader_batch(obs, self.config.history)

    def predict_chunk(
        self, obs: Any, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> np.ndarray:
        """Action chunks (B, H, A) in raw action units, float32; with heatmap translation, x, y, z of the
        (single) step are the heatmaps' point where a camera sees it, the head's elsewhere."""
        with torch.inference_mode():
            readout, views, _ = self._encode(self.as_batch(obs))
            normalized = self.head.sample(readout, generator=generator, noise=noise)
            chunk = self.normalizer.unnormalize("action", normalized)
            if views:
                point, seen = self._heatmap_translation(views)
                chunk[:, 0, :3] = torch.where(seen[:, None], point, chunk[:, 0, :3])
        return chunk.float().cpu().numpy()

    # --- statistics and checkpoints -----------------------------------------------------------------
    def adapt_to_dataset(self, stats: Mapping[str, Mapping[str, Any]], action_samples: Any = None) -> None:
        """Use a new dataset's statistics; a head that fits to data (the adaptive grid) is re-fitted on its
        raw actions (N, A)."""
        self.load_statistics(stats)
        if self.head.fits_to_data:
            self.head.fit(self._normalized_samples(action_samples), first=False)

    def load_statistics(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """The normaliser's statistics and, with heatmap translation, the box the translation is searched
        in: the actions' x, y, z range widened by `TRANSLATION_MARGIN` (targets lie where the demos went)."""
        self.normalizer.load_statistics(stats)
        if self.heatmap is None:
            return
        action = stats.get("action", {})
        if "min" not in action or "max" not in action:
            raise ConfigError("translation='heatmap' needs the action statistics' 'min' and 'max'; these have none")
        low = torch.as_tensor(action["min"], dtype=torch.float32)[:3] - TRANSLATION_MARGIN
        high = torch.as_tensor(action["max"], dtype=torch.float32)[:3] + TRANSLATION_MARGIN
        self.translation_box.copy_(torch.stack([low, high]).to(self.translation_box))

    def fit_head(self, action_samples: Any) -> None:
        """Fit a head that fits to data (the adaptive grid) on raw action samples (N, A)."""
        if not self.head.fits_to_data:
            raise ConfigError(f"head {self.config.head.name!r} has nothing to fit")
        self.head.fit(self._normalized_samples(action_samples))

    def _normalized_samples(self, action_samples: Any) -> torch.Tensor:
        if action_samples is None:
            raise ConfigError(
                f"the {self.config.head.name} head fits to the dataset's actions: pass action_samples, raw actions "
                "(N, A) from the training episodes (e.g. all of them, or a random 100k)"
            )
        samples = torch.as_tensor(np.asarray(action_samples, dtype=np.float32), device=self.device)
        if samples.ndim != 2 or samples.shape[1] != self.config.action_dim:
            raise ConfigError(f"action_samples must be (N, {self.config.action_dim}), got {tuple(samples.shape)}")
        return self.normalizer.normalize("action", samples)

    def save_pretrained(self, directory: str | Path) -> Path:
        from polyact.policies.policy_dir import save_pretrained

        return save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> VLAPolicy:
        from polyact.policies.policy_dir import load_pretrained

        return load_pretrained(directory, map_location)


def build_policy(
    config: PolicyConfig,
    spec: EnvSpec,
    stats: Mapping[str, Mapping[str, Any]],
    instructions: Iterable[str],
    action_samples: Any = None,
) -> VLAPolicy:
    """A new policy for an environment and a dataset.

    Fills the environment fields of (a copy of) `config` from `spec` (cameras default to all of the
    spec's, none with `state_only`; resolution, action/state/goal sizes), the word vocabulary from the
    training `instructions`, loads the statistics (a missing one raises) and, for a head that fits to
    data (the adaptive grid), fits it on `action_samples`, raw actions (N, A). The policy keeps `spec`,
    so its checkpoint describes the environment it acts in. With `config.goal` false the policy ignores
    the spec's goal vector, and the spec it keeps has none, so it is evaluated and served only where the
    goal is withheld.
    """
    cfg = copy.deepcopy(config)
    if not cfg.goal and spec.goal_names:  # a goal-free policy acts in the spec without the goal
        notes = {k: v for k, v in spec.notes.items() if k != "goal"}
        spec = dataclasses.replace(spec, goal_names=(), notes=notes)
    env_fields = {"action_dim": spec.action.dim, "state_dim": len(spec.state_names), "goal_dim": len(spec.goal_names)}
    if not cfg.state_only:
        env_fields |= _camera_fields(cfg, spec)
    for name, value in env_fields.items():
        if getattr(cfg, name) not in (0, value):
            raise ConfigError(f"config {name}={getattr(cfg, name)} disagrees with the environment's {value}")
        setattr(cfg, name, value)
    if cfg.text.encoder == "words" and not cfg.text.vocab:
        cfg.text.vocab = build_vocab(instructions)
    if cfg.translation == "heatmap" and tuple(spec.action.names[:3]) != ("x", "y", "z"):
        raise ConfigError(
            "translation='heatmap' needs actions that begin with a world-frame position x, y, z (keyframe actions, "
            f"env.action_mode=keyframe); this environment's are {list(spec.action.names)}"
        )
    policy = VLAPolicy(cfg, env_spec=spec)
    policy.load_statistics(stats)
    if policy.head.fits_to_data:
        policy.fit_head(action_samples)
    return policy


def _camera_fields(cfg: PolicyConfig, spec: EnvSpec) -> dict[str, int]:
    """Set `cfg.cameras` (default: all the spec's) and return their shared resolution."""
    for cam in cfg.cameras:
        if cam not in spec.camera_names:
            raise unknown_name("camera", cam, spec.camera_names)
    cfg.cameras = list(cfg.cameras or spec.camera_names)
    sizes = {(c.height, c.width) for c in spec.cameras if c.name in cfg.cameras}
    if len(sizes) != 1:
        raise ConfigError(f"the policy's cameras {cfg.cameras} must share one resolution, got {sorted(sizes)}")
    first = next(c for c in spec.cameras if c.name == cfg.cameras[0])
    return {"image_height": first.height, "image_width": first.width}

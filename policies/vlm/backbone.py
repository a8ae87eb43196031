"""A pretrained VLM from a LOCAL directory, fine-tuned to emit OpenVLA's action tokens.

    base directory (save_pretrained of model, tokenizer and image processor)
        config.json, model*.safetensors, tokenizer files, preprocessor_config.json (image_mean / image_std)

Images: one per camera, resized to the vision tower's square input and normalised with the
preprocessor's mean and std. Text: OpenVLA's prompt. Sequences are LEFT-padded, so the action tokens
of every sample sit at the end: the language-model head then runs on those positions alone
(`logits_to_keep`; a 257k vocabulary over every prompt position would cost far more than the model),
and greedy decoding is `generate` restricted to the action ids. Positions count real tokens only,
as `generate` counts them, so training and decoding see the same positions.

Fine-tuning modes (VLMConfig.finetune): "full"; "frozen_vision" (the vision tower keeps its weights);
"lora" (peft adapters on `lora_targets`, the base frozen). Nothing here downloads: every load passes
`local_files_only=True`, and a missing or changed base model is a ConfigError naming the directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from polyact.errors import ConfigError
from polyact.policies.config import HeadConfig, VLMConfig
from polyact.policies.pretrained import PREPROCESSOR_FILE, _transformers
from polyact.policies.vlm.action_tokens import ActionTokens
from polyact.policies.vlm.expert import Prefix
from polyact.policies.vlm.expert_heads import EXPERT_HEADS
from polyact.policies.vlm.families import family_class
from polyact.policies.vlm.grid_tokens import GridTokens

PROMPT = "In: What action should the robot take to {instruction}?\nOut:"  # OpenVLA's, instruction lower-cased
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
EXPECTED = (
    "config.json, the weights (model*.safetensors), the tokenizer (tokenizer.json or tokenizer.model, with "
    f"tokenizer_config.json) and {PREPROCESSOR_FILE} (image_mean, image_std): what save_pretrained of the model, "
    "its tokenizer and its image processor write, e.g. a downloaded google/paligemma-3b-pt-224 or "
    "HuggingFaceTB/SmolVLM-256M-Instruct"
)


def weight_files(path: Path) -> list[Path]:
    return sorted(p for pattern in WEIGHT_PATTERNS for p in path.glob(pattern))


def check_base_dir(path: str | Path, weights: bool) -> Path:
    """The base model directory, or a ConfigError naming it and every file it lacks."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"VLM base model directory {str(path)!r} does not exist; it must hold {EXPECTED}")
    missing = [name for name in ("config.json", PREPROCESSOR_FILE) if not (path / name).is_file()]
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        missing.append("tokenizer files")
    if weights and not weight_files(path):
        missing.append("model*.safetensors")
    if missing:
        raise ConfigError(f"VLM base model directory {str(path)!r} lacks {missing}; it must hold {EXPECTED}")
    return path


def base_sha256(path: Path) -> str:
    """SHA-256 over config.json and the weight files (names and bytes): which base model a policy was
    trained on, checked whenever its frozen weights are read from the base directory again."""
    digest = hashlib.sha256()
    for file in [path / "config.json", *weight_files(path)]:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def _module_name(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if m is module).rsplit(".", 1)[-1]


@torch.no_grad()
def _extend_vocabulary(model: nn.Module, begin: int, end: int, init: bool) -> None:
    """Embedding rows for the new ids begin..end-1 (a policy's saved weights fill them unless `init`),
    initialised as SpatialVLA's pretraining initialises them (train/spatialvla_pretrain.py):
    `resize_token_embeddings` (transformers' mean resizing, input rows drawn from a Gaussian with the old
    rows' mean and covariance), then the language-model head's new rows set to the mean of its old rows.
    SpatialVLA unties the head from the input embedding first; a tied model here (PaliGemma, SmolVLM) keeps
    one matrix, whose new rows are then that mean in both roles."""
    if model.get_input_embeddings().num_embeddings < end:
        model.resize_token_embeddings(end, mean_resizing=init)
    if init:
        head = model.get_output_embeddings().weight
        head[begin:end] = head[:begin].mean(0)


class _ActionIdsOnly:
    """A generate() logits processor: only action ids may be emitted (at each position, the ones allowed
    there); `prompt` is the length of the left-padded prompts."""

    def __init__(self, tokens: ActionTokens | GridTokens, prompt: int):
        self.tokens, self.prompt = tokens, prompt

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.tokens.restrict(scores[:, None], first=input_ids.shape[1] - self.prompt)[:, 0]


class VLMBackbone(nn.Module):
    """Instructions and camera images -> action-token logits (training) or greedy action tokens."""

    def __init__(self, cfg: VLMConfig, head: HeadConfig, action_dim: int, load_weights: bool = True):
        super().__init__()
        tf = _transformers()
        self.cfg = cfg
        self.sha256 = cfg.base_sha256
        if load_weights:
            path = check_base_dir(cfg.path, weights=True)
            self.sha256 = base_sha256(path)
            if cfg.base_sha256 and cfg.base_sha256 != self.sha256:
                raise ConfigError(
                    f"VLM base model {str(path)!r} is not the one this policy was trained on: its content hash is "
                    f"{self.sha256[:16]}..., the policy's {cfg.base_sha256[:16]}...; point policy.vlm.path at the "
                    "original base model"
                )
        files = check_base_dir(cfg.files or cfg.path, weights=False)
        model_class = getattr(tf, family_class(cfg.family).model_class)
        if load_weights:
            model = model_class.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        else:  # the architecture alone: the weights come from a policy directory
            model = model_class._from_config(tf.AutoConfig.from_pretrained(files, local_files_only=True))
        self.tokenizer = tf.AutoTokenizer.from_pretrained(files, local_files_only=True)
        self.files = files
        self.family = family_class(cfg.family)(model.config, self.tokenizer)
        self.tokens: ActionTokens | GridTokens | None = None  # flow, diffusion, l1: the action expert acts instead
        if head.name == "adaptive_grid":
            self.tokens = self._grid_tokens(model, head, action_dim, init=load_weights)
        elif head.name not in EXPERT_HEADS:
            vocab = model.get_output_embeddings().out_features
            special = self.family.special_ids()
            self.tokens = ActionTokens(self.tokenizer.vocab_size, head.num_bins, special, vocab, action_dim)
        pre = json.loads((files / PREPROCESSOR_FILE).read_text())
        for key in ("image_mean", "image_std"):
            if key not in pre:
                raise ConfigError(f"{files / PREPROCESSOR_FILE} lacks {key!r}")
        self.register_buffer("mean", torch.tensor(pre["image_mean"]).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(pre["image_std"]).view(1, 1, 3, 1, 1), persistent=False)
        if head.name in EXPERT_HEADS and cfg.expert_layers == "first_half":
            # SmolVLA's layer skipping (arXiv 2506.01844: the expert reads the features of the first half of
            # the VLM's layers): the upper layers are dropped, so they neither run nor train nor are saved;
            # the decoder's forward runs `self.layers[: config.num_hidden_layers]` (GemmaModel, LlamaModel)
            decoder = model.get_decoder()
            decoder.layers = decoder.layers[: len(decoder.layers) // 2]
        if cfg.finetune == "frozen_vision":
            self.family.vision_tower(model).requires_grad_(False)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if head.name in EXPERT_HEADS:  # the expert's prefix cache replaces, so recomputation may write it
                from polyact.policies.vlm.prefix_cache import allow_under_checkpointing  # imports transformers

                allow_under_checkpointing(model.get_decoder())
        if cfg.finetune == "lora":
            model = self._with_lora(model)
        self.model = model
        self.merged = False

    def _grid_tokens(self, model: nn.Module, head: HeadConfig, action_dim: int, init: bool) -> GridTokens:
        """SpatialVLA's grid-cell tokens added to the tokenizer (a saved policy's tokenizer has them already)
        and to the embedding matrices (a saved policy's config has the extended vocabulary)."""
        names = GridTokens.names(head, action_dim)
        self.tokenizer.add_tokens(names, special_tokens=True)
        ids = self.tokenizer.convert_tokens_to_ids(names)
        tokens = GridTokens(head, action_dim, ids[0])
        if ids != list(range(tokens.begin, tokens.end)):
            raise ConfigError(f"the grid's {len(names)} action tokens did not get consecutive ids in {self.files}")
        _extend_vocabulary(model, tokens.begin, tokens.end, init)
        tokens.rows = self._token_rows
        return tokens

    @property
    def lora(self) -> bool:
        """The model is peft-wrapped: LoRA adapters, not yet merged."""
        return self.cfg.finetune == "lora" and not self.merged

    def _token_rows(self) -> list[torch.Tensor]:
        """The grid tokens' embedding rows (count, D), each matrix once (tied input and output are one);
        with LoRA, peft's trainable copies of them."""
        if self.lora:
            from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

            layers = [m for m in self.model.modules() if isinstance(m, TrainableTokensLayer)]
            rows = [p for m in layers for p in m.trainable_tokens_delta.values()]
        else:
            begin, end = self.tokens.begin, self.tokens.end
            matrices = [self.model.get_input_embeddings().weight, self.model.get_output_embeddings().weight]
            rows = [w.data[begin:end] for w in matrices]
        unique = {r.data_ptr(): r for r in rows}
        return list(unique.values())

    def _with_lora(self, model: nn.Module) -> nn.Module:
        try:
            import peft
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ConfigError("vlm.finetune=lora needs the `peft` package: pip install 'polyact[pretrained]'") from e
        targets = self.cfg.lora_targets
        trainable = None
        if isinstance(self.tokens, GridTokens):  # the added ids' rows train beside the adapters (peft copies)
            ids = list(range(self.tokens.begin, self.tokens.end))
            trainable = {_module_name(model, model.get_input_embeddings()): ids}
            if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
                trainable[_module_name(model, model.get_output_embeddings())] = ids
        lora = peft.LoraConfig(
            r=self.cfg.lora_rank,
            lora_alpha=self.cfg.lora_alpha,
            lora_dropout=self.cfg.lora_dropout,
            target_modules="all-linear" if targets == ["all-linear"] else list(targets),
            trainable_token_indices=trainable,
        )
        return peft.get_peft_model(model, lora)

    # --- inputs -------------------------------------------------------------------------------------
    def pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W, 3), one image per camera -> normalised (B, C, 3, S, S)."""
        b = images.shape[0]
        x = rearrange(images, "b c h w rgb -> (b c) rgb h w").float() / 255.0
        s = self.family.image_size
        x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        x = rearrange(x, "(b c) rgb h w -> b c rgb h w", b=b)
        return (x - self.mean) / self.std

    def prompt_ids(self, instruction: str) -> list[int]:
        text = PROMPT.format(instruction=instruction.lower()) + self.family.separator
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def inputs(self, instructions: list[str], images: torch.Tensor, actions: torch.Tensor | None) -> dict[str, Any]:
        """Left-padded model inputs: per sample its prefix (images and prompt), then `actions` (B, n) ids."""
        cameras, device = images.shape[1], images.device
        rows = [self.family.prefix(cameras, self.prompt_ids(text)) for text in instructions]
        n = 0 if actions is None else actions.shape[1]
        longest = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (longest - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (longest - len(r)) + [1] * len(r) for r in rows], device=device)
        types = torch.zeros_like(ids)
        if actions is not None:
            ids = torch.cat([ids, actions], dim=1)
            mask = torch.cat([mask, torch.ones_like(actions)], dim=1)
            types = torch.cat([types, torch.ones_like(actions)], dim=1)
        out = {"input_ids": ids, "attention_mask": mask}
        out.update(self.family.model_inputs(self.pixel_values(images), types))
        if n:  # generate() derives the same positions itself
            out["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0) + self.family.position_offset
        return out

    # --- training and decoding ----------------------------------------------------------------------
    def action_logits(self, instructions: list[str], images: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: action ids (B, n) -> logits (B, n, V), position i predicting actions[:, i]."""
        n = actions.shape[1]
        inputs = self.inputs(instructions, images, actions[:, :-1])
        return self.model(**inputs, logits_to_keep=n, use_cache=False).logits

    def prefix(self, instructions: list[str], images: torch.Tensor) -> Prefix:
        """The prefix's KV cache for the action expert (expert.py): one forward of the VLM's decoder over
        images and prompt, no language-model head. The cache is passed in and read here, not returned:
        under gradient checkpointing the model returns none (prefix_cache.py)."""
        inputs = self.inputs(instructions, images, None)
        mask = inputs["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0) + self.family.position_offset
        from polyact.policies.vlm.prefix_cache import prefix_cache  # imports transformers, loaded by now

        cache = prefix_cache(self.num_layers)
        base = self.base_model
        out = base.model(**inputs, position_ids=positions, cache=cache, use_cache=True)
        layers = cache.layers
        return Prefix(
            keys=[layer.keys for layer in layers],
            values=[layer.values for layer in layers],
            mask=mask.bool(),
            next_position=mask.sum(-1) + self.family.position_offset,
            hidden=out.last_hidden_state,
        )

    @property
    def base_model(self) -> nn.Module:
        """The transformers model under the LoRA wrapper, if any."""
        return self.model.get_base_model() if self.lora else self.model

    @property
    def num_layers(self) -> int:
        """The language model's decoder layers that run: all, or the first half (`vlm.expert_layers`)."""
        base = self.base_model
        return len(base.get_decoder().layers)

    @property
    def rotary(self) -> nn.Module:
        """The language model's rotary embedding module: (x, positions) -> (cos, sin)."""
        base = self.base_model
        return base.get_decoder().rotary_emb

    @torch.no_grad()
    def decode(self, instructions: list[str], images: torch.Tensor, n: int) -> torch.Tensor:
        """Greedy decoding of `n` action ids (B, n), each conditioned on the ones before it."""
        tf = _transformers()
        inputs = self.inputs(instructions, images, None)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        generation = tf.GenerationConfig(max_new_tokens=n, do_sample=False, num_beams=1, pad_token_id=pad)
        out = self.model.generate(
            **inputs,
            generation_config=generation,
            logits_processor=tf.LogitsProcessorList([_ActionIdsOnly(self.tokens, inputs["input_ids"].shape[1])]),
        )
        return out[:, -n:]

    # --- LoRA and files -----------------------------------------------------------------------------
    def merge_lora(self) -> None:
        """Fold the LoRA adapters into the base weights (inference: one matmul per layer again)."""
        if self.cfg.finetune != "lora" or self.merged:
            raise ConfigError("merge_lora needs a policy fine-tuned with vlm.finetune=lora, not yet merged")
        self.model = self.model.merge_and_unload()
        self.merged = True

    def save_files(self, target: Path) -> None:
        """The base's config, tokenizer and preprocessor (small files, not weights), so the architecture and
        the tokenisation are rebuilt from the policy directory alone."""
        target.mkdir(parents=True, exist_ok=True)
        base = self.base_model
        base.config.save_pretrained(target)
        self.tokenizer.save_pretrained(target)
        shutil.copyfile(self.files / PREPROCESSOR_FILE, target / PREPROCESSOR_FILE)

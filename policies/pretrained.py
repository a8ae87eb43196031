"""Pretrained vision and text backbones through `transformers`, from LOCAL directories only.

Nothing here downloads: every load passes `local_files_only=True`. A backbone directory is what
`save_pretrained` of transformers writes (config.json, model.safetensors, and for images a
`preprocessor_config.json` with `image_mean`/`image_std`; for text the tokenizer files). The policy's own
checkpoint copies the backbone's config, preprocessor and tokenizer files into a subfolder and keeps the
weights in its `model.safetensors`, so `from_pretrained` rebuilds the backbone with `from_config` and
needs neither the original directory nor the network.

transformers is imported only when a pretrained backbone is used: the default policy does not need it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from polyact.errors import ConfigError

PREPROCESSOR_FILE = "preprocessor_config.json"


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError("pretrained backbones need the `transformers` package: pip install transformers") from e
    return transformers


def _check_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{what} directory {str(path)!r} has no config.json (a transformers save_pretrained dir)")
    return path


def _load_model(path: Path, load_weights: bool) -> nn.Module:
    tf = _transformers()
    if load_weights:
        return tf.AutoModel.from_pretrained(path, local_files_only=True)
    return tf.AutoModel.from_config(tf.AutoConfig.from_pretrained(path, local_files_only=True))


class PretrainedVision(nn.Module):
    """A ViT-style backbone (SigLIP, DINOv2, ...) as a patch-feature map (N, hidden, gh, gw).

    Images are resized to the backbone's `image_size` and normalised with the `image_mean`/`image_std`
    of its preprocessor_config.json (required: a guessed normalisation would silently hurt features).
    Patch tokens are the last gh*gw output tokens, which skips DINOv2's CLS and register tokens.
    """

    def __init__(self, path: str | Path, load_weights: bool = True):
        super().__init__()
        self.path = _check_dir(path, "vision backbone")
        pre_file = self.path / PREPROCESSOR_FILE
        if not pre_file.is_file():
            raise ConfigError(
                f"vision backbone directory {str(self.path)!r} has no {PREPROCESSOR_FILE}; it must give "
                "image_mean and image_std (save the model's image processor beside it)"
            )
        pre = json.loads(pre_file.read_text())
        for key in ("image_mean", "image_std"):
            if key not in pre:
                raise ConfigError(f"{pre_file} lacks {key!r}")
        model = _load_model(self.path, load_weights)
        self.model = getattr(model, "vision_model", model)  # a full SigLIP/CLIP model: keep its image tower
        cfg = self.model.config
        self.image_size = int(cfg.image_size)
        self.grid = (self.image_size // int(cfg.patch_size),) * 2
        self.hidden = int(cfg.hidden_size)
        self.register_buffer(
            "mean", torch.tensor(pre["image_mean"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(pre["image_std"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images float in [0, 1], (N, 3, H, W) -> (N, hidden, gh, gw)."""
        x = F.interpolate(
            images, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False
        )
        tokens = self.model(pixel_values=(x - self.mean) / self.std).last_hidden_state
        gh, gw = self.grid
        return rearrange(tokens[:, -gh * gw :], "n (h w) c -> n c h w", h=gh, w=gw)

    def save_files(self, target: Path) -> None:
        """Config and preprocessor (not weights: those live in the policy's model.safetensors)."""
        target.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(target)
        shutil.copyfile(self.path / PREPROCESSOR_FILE, target / PREPROCESSOR_FILE)


class PretrainedText(nn.Module):
    """A frozen text encoder (e.g. the MiniLM sentence encoder): per-token features of an instruction.

    We keep the token features (B, L, hidden) rather than the pooled sentence embedding: the trunk can
    attend to the words that matter, as Octo and pi0 do with their language tokens.
    """

    def __init__(self, path: str | Path, max_tokens: int, load_weights: bool = True):
        super().__init__()
        self.path = _check_dir(path, "text encoder")
        tf = _transformers()
        self.tokenizer = tf.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = _load_model(self.path, load_weights)
        self.model.requires_grad_(False)
        self.model.eval()
        self.hidden = int(self.model.config.hidden_size)
        self.max_tokens = max_tokens

    def train(self, mode: bool = True) -> PretrainedText:
        super().train(mode)
        self.model.eval()  # frozen: no dropout, ever
        return self

    @torch.no_grad()
    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts -> features (B, L, hidden) and pad mask (B, L), True = padding."""
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        device = next(self.model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        out = self.model(**enc).last_hidden_state
        return out, enc["attention_mask"] == 0

    def save_files(self, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(target)
        self.tokenizer.save_pretrained(target)

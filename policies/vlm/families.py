"""What differs between image-text-to-text model families, behind one small interface.

A family says how camera images and a prompt become the model's inputs (where its image placeholder
tokens go, the shape of `pixel_values`, its position-id convention) and where its vision tower is.
Everything else (loading, action tokens, the loss, decoding, LoRA) is shared, so another family is one
subclass here, registered in FAMILIES.

Several cameras: one image per camera, in the policy's camera order, each with its own placeholder
tokens before the prompt (PaliGemma's processor places several images the same way; Idefics3 gives
each image its `<fake_token_around_image><global-img>` frame). No image splitting: each camera image is
resized to the vision tower's square input.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from einops import rearrange
from torch import nn

from polyact.errors import ConfigError, unknown_name


class VLMFamily(ABC):
    """One transformers image-text-to-text architecture."""

    model_class: ClassVar[str]  # the transformers class that holds the language-model head
    position_offset: ClassVar[int] = 0  # added to 0-based positions (PaliGemma's are 1-based)
    separator: ClassVar[str] = ""  # appended to the prompt (PaliGemma's processor ends the prefix with "\n")

    def __init__(self, config: Any, tokenizer: Any):
        self.config, self.tokenizer = config, tokenizer

    @property
    def image_size(self) -> int:
        """Pixels per side of the vision tower's input."""
        return int(self.config.vision_config.image_size)

    @abstractmethod
    def image_ids(self) -> list[int]:
        """The token ids that stand for one image in the prompt, placeholders and any frame around them."""

    def _bos(self) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return [] if bos is None else [bos]

    def prefix(self, cameras: int, prompt_ids: list[int]) -> list[int]:
        """The ids before the action tokens: BOS (where the tokenizer has one), one image per camera, prompt."""
        return self._bos() + self.image_ids() * cameras + prompt_ids

    def special_ids(self) -> set[int]:
        """Ids the action tokens must not overlap."""
        ids = {self.config.image_token_id, *self.image_ids(), *self._bos()}
        return ids | {i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id) if i is not None}

    @abstractmethod
    def model_inputs(self, pixel_values: torch.Tensor, token_type_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """pixel_values (B, C, 3, S, S), one image per camera; token_type_ids (B, L) 0 = prefix, 1 = actions
        -> the image keyword arguments of the model's forward."""

    @abstractmethod
    def vision_tower(self, model: nn.Module) -> nn.Module:
        """The image encoder that `finetune=frozen_vision` freezes."""

    def decoder_layer_class(self, model: nn.Module) -> type[nn.Module]:
        """The language model's decoder layer (GemmaDecoderLayer, LlamaDecoderLayer, ...): FSDP's unit."""
        return type(model.get_decoder().layers[0])

    def _token(self, text: str) -> int:
        token = self.tokenizer.convert_tokens_to_ids(text)
        if token is None or token == self.tokenizer.unk_token_id:
            raise ConfigError(f"the tokenizer has no {text!r} token, which this model family's prompts need")
        return int(token)


class PaliGemma(VLMFamily):
    """PaliGemma 1/2 (SigLIP + Gemma): `<image>` x 256 per 224-pixel image, then BOS, the prompt and "\\n";
    the prefix attends bidirectionally (token_type_ids 0), the action tokens causally (1)."""

    model_class = "PaliGemmaForConditionalGeneration"
    position_offset = 1
    separator = "\n"

    def image_ids(self) -> list[int]:
        return [self.config.image_token_id] * int(self.config.text_config.num_image_tokens)

    def prefix(self, cameras, prompt_ids):
        return self.image_ids() * cameras + self._bos() + prompt_ids

    def model_inputs(self, pixel_values, token_type_ids):
        return {"pixel_values": rearrange(pixel_values, "b c ... -> (b c) ..."), "token_type_ids": token_type_ids}

    def vision_tower(self, model):
        return model.model.vision_tower


class Idefics3(VLMFamily):
    """Idefics3 / SmolVLM (SigLIP + pixel shuffle + Llama/SmolLM): each image as
    `<fake_token_around_image><global-img>` + `<image>` x (patches / scale_factor^2) + `<fake_token_around_image>`."""

    model_class = "Idefics3ForConditionalGeneration"

    def image_ids(self) -> list[int]:
        v = self.config.vision_config
        count = (int(v.image_size) // int(v.patch_size)) ** 2 // int(self.config.scale_factor) ** 2
        frame = self._token("<fake_token_around_image>")
        return [frame, self._token("<global-img>"), *[self.config.image_token_id] * count, frame]

    def model_inputs(self, pixel_values, token_type_ids):
        b, c, _, h, w = pixel_values.shape
        mask = torch.ones(b, c, h, w, dtype=torch.bool, device=pixel_values.device)
        return {"pixel_values": pixel_values, "pixel_attention_mask": mask}

    def vision_tower(self, model):
        return model.model.vision_model


FAMILIES: dict[str, type[VLMFamily]] = {"paligemma": PaliGemma, "idefics3": Idefics3}


def family_class(name: str) -> type[VLMFamily]:
    if name not in FAMILIES:
        raise unknown_name("vlm family", name, FAMILIES)
    return FAMILIES[name]

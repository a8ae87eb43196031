"""Tiny random-initialised base models of each family, written as a downloaded model is laid out.

Tests and benchmarks (bench/vlm.py) build them from the families' transformers configs, so the VLM
policy runs offline on real architectures with nothing downloaded: a WordLevel tokenizer (`tokenizers`)
over the given words, control tokens and filler words up to `VOCAB` ids (the last 256 are fillers, which
OpenVLA's action tokens overwrite), 2 decoder layers of width 32, and a one-layer SigLIP tower.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from polyact.policies.pretrained import PREPROCESSOR_FILE, _transformers

VOCAB = 300
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", "<image>", "<fake_token_around_image>", "<global-img>"]
PROMPT_WORDS = ["in", ":", "what", "action", "should", "robot", "take", "to", "?", "out"]
IMAGE = SPECIALS.index("<image>")
TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "vocab_size": VOCAB,
}


def tiny_tokenizer(words: Iterable[str]) -> Any:
    """A fast tokenizer: one id per control token, prompt word and instruction word, fillers up to VOCAB."""
    import tokenizers

    names = SPECIALS + sorted(set(PROMPT_WORDS) | {w.lower() for text in words for w in text.split()})
    vocab = {name: i for i, name in enumerate(names + [f"<filler{i}>" for i in range(VOCAB - len(names))])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = tokenizers.normalizers.Lowercase()
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return _transformers().PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )


def tiny_model(family: str) -> Any:
    """A random-initialised model of `family` ("paligemma" or "idefics3") with tiny shapes."""
    tf = _transformers()
    if family == "paligemma":
        config = tf.PaliGemmaConfig(
            vision_config={
                "model_type": "siglip_vision_model",
                "image_size": 28,
                "patch_size": 14,
                "vision_use_head": False,
                **TINY_VISION,
            },
            text_config={"model_type": "gemma", **TINY_TEXT},
            image_token_index=IMAGE,
            vocab_size=VOCAB,
            projection_dim=32,
            hidden_size=32,
        )
        return tf.PaliGemmaForConditionalGeneration(config)
    config = tf.Idefics3Config(
        vision_config={"image_size": 56, "patch_size": 14, **TINY_VISION},
        text_config={"model_type": "llama", **TINY_TEXT},
        image_token_id=IMAGE,
        scale_factor=2,
    )
    return tf.Idefics3ForConditionalGeneration(config)


def write_tiny_base(path: str | Path, family: str, words: Iterable[str], seed: int = 0) -> Path:
    """A base model directory (model, tokenizer, preprocessor_config.json) at `path`, weights from `seed`."""
    path = Path(path)
    torch.manual_seed(seed)
    tiny_model(family).save_pretrained(path)
    tiny_tokenizer(words).save_pretrained(path)
    (path / PREPROCESSOR_FILE).write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    return path

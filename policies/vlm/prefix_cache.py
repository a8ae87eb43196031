"""The prefix's KV cache for the action expert, one that survives gradient checkpointing.

transformers 5.24 drops a decoder layer's cache when it checkpoints the layer in training
(modeling_layers.py, `GradientCheckpointingLayer`: `cache=None` unless the layer's
`_can_checkpoint_with_cache` is set, which it reserves for layers that only read the cache, because a
`DynamicLayer.update` (cache_utils.py) appends: the backward pass's recomputation of the layer would
append its keys a second time, and the recomputed attention would read twice the keys). The model's
forward also turns `use_cache` off (utils/generic.py `merge_with_config_defaults`; Idefics3Model's own
check) and then returns no cache, but a cache passed in is still handed to every layer (GemmaModel,
LlamaModel: `cache=cache` whatever `use_cache`), and the attention writes to it whenever it is not None.

So the prefix passes its own cache, whose per-layer update REPLACES: the recomputation writes the same
keys and values again and its attention reads exactly what the first forward read, so checkpointing
may keep it (`allow_under_checkpointing`). The expert reads the keys and values of the first forward
(they carry the autograd graph; non-reentrant checkpointing recomputes the layer's saved activations
when the gradient reaches them).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache, DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer


class _ReplacingLayer(DynamicLayer):
    """One layer's keys and values, overwritten (not appended) by each update."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self.values = key_states, value_states
        return key_states, value_states


def prefix_cache(num_layers: int) -> Cache:
    """An empty cache of `num_layers` decoder layers, each holding the last keys/values written to it."""
    return Cache(layers=[_ReplacingLayer() for _ in range(num_layers)])


def allow_under_checkpointing(decoder: nn.Module) -> None:
    """Let the decoder's checkpointed layers keep the cache they are given: only `VLMBackbone.prefix` gives
    one in training (the token heads' loss runs without a cache; greedy decoding runs without gradients,
    so nothing is checkpointed)."""
    for layer in decoder.modules():
        if isinstance(layer, GradientCheckpointingLayer):
            layer._can_checkpoint_with_cache = True

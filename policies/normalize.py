"""Dataset statistics as buffers of the policy, so they are saved and loaded with its weights.

Following diffusion_policy's LinearNormalizer (an nn.Module in the state dict) and the lesson of
lerobot #4415 / openpi #773 (statistics silently skipped): a statistic the policy needs and the
dataset lacks raises `MissingStatisticError` naming the feature and key, when the policy is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from polyact.errors import ConfigError

# what each mode reads
_MODE_KEYS = {"q01_q99": ("q01", "q99"), "min_max": ("min", "max"), "mean_std": ("mean", "std")}
# The smallest std a `mean_std` feature is scaled by (robomimic adds the same 1e-3 to its observation
# stds). A dimension that barely varies in the demonstrations otherwise turns differences far below any
# sensor's noise into many standard deviations: a resting block's height varies by 1e-5 m across
# pick_and_lift's demos, and MJX's contacts rest it 1e-4 m higher than CPU MuJoCo's: 10 std, part of
# why a state policy never set off on MJX (docs/rlbench_like.md). 1e-3 is a millimetre, a milliradian,
# or 0.1% of a gripper's travel: far below what the demonstrations vary by, far above two simulators'
# disagreement.
MIN_STD = 1e-3


class MissingStatisticError(ConfigError):
    """A statistic the policy needs is not in the dataset statistics."""


def _buffer_name(feature: str) -> str:
    return feature.replace("/", "__")


class Normalizer(nn.Module):
    """Maps raw features to the network's scale and back, per feature.

    Modes: `q01_q99` (OpenVLA's BOUNDS_Q99: `clip(2(x-q01)/(q99-q01)-1, -1, 1)`, dimensions with
    q01 == q99 map to 0, prismatic/vla/datasets/rlds/utils/data_utils.py), `min_max` (the same with
    min/max) and `mean_std` (z-score with the std at least MIN_STD, floored as the statistics are
    loaded so that the buffers hold what is used; checkpoints saved before the floor keep their stds,
    and a std below 1e-6 in them leaves the dimension centred but unscaled).
    """

    def __init__(self, modes: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]]):
        super().__init__()
        self.modes = dict(modes)
        for feature, mode in self.modes.items():
            for key in _MODE_KEYS[mode]:
                self.register_buffer(f"{_buffer_name(feature)}__{key}", torch.zeros(shapes[feature]))

    def load_statistics(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Copy the statistics this normaliser needs from the dataset's `{feature: {key: array}}`."""
        for feature, mode in self.modes.items():
            if feature not in stats:
                raise MissingStatisticError(
                    f"dataset statistics lack feature {feature!r} (needed keys: {list(_MODE_KEYS[mode])}); "
                    f"features present: {sorted(stats)}"
                )
            for key in _MODE_KEYS[mode]:
                if key not in stats[feature]:
                    raise MissingStatisticError(
                        f"dataset statistics for feature {feature!r} lack key {key!r}; keys present: "
                        f"{sorted(stats[feature])}"
                    )
                buf = self.stat(feature, key)
                value = torch.as_tensor(np.asarray(stats[feature][key], dtype=np.float32))
                if value.numel() != buf.numel():
                    raise ConfigError(
                        f"statistic {feature}/{key} has {value.numel()} values; the policy expects shape "
                        f"{tuple(buf.shape)}"
                    )
                if not torch.isfinite(value).all():
                    raise ConfigError(f"statistic {feature}/{key} has non-finite values: {value.tolist()}")
                if key == "std":
                    value = value.clamp(min=MIN_STD)
                buf.copy_(value.reshape(buf.shape))

    def stat(self, feature: str, key: str) -> torch.Tensor:
        return getattr(self, f"{_buffer_name(feature)}__{key}")

    def _bounds(self, feature: str) -> tuple[torch.Tensor, torch.Tensor]:
        low_key, high_key = _MODE_KEYS[self.modes[feature]]
        return self.stat(feature, low_key), self.stat(feature, high_key)

    def normalize(self, feature: str, x: torch.Tensor) -> torch.Tensor:
        """Raw `x` (..., *shape) to the network's scale."""
        if self.modes[feature] == "mean_std":
            mean, std = self._bounds(feature)
            return (x - mean) / torch.where(std > 1e-6, std, torch.ones_like(std))
        low, high = self._bounds(feature)
        y = (2 * (x - low) / (high - low + 1e-8) - 1).clamp(-1, 1)
        return torch.where(high == low, torch.zeros_like(y), y)

    def unnormalize(self, feature: str, y: torch.Tensor) -> torch.Tensor:
        """The inverse of `normalize` (on [-1, 1] for the bounds modes)."""
        if self.modes[feature] == "mean_std":
            mean, std = self._bounds(feature)
            return y * torch.where(std > 1e-6, std, torch.ones_like(std)) + mean
        low, high = self._bounds(feature)
        return 0.5 * (y + 1) * (high - low) + low

    def extra_repr(self) -> str:
        return ", ".join(f"{f}: {m}" for f, m in self.modes.items())

"""GR-1's future-frame objective: the targets are each token's patch of the frame ahead, the loss skips
windows whose future lies past the episode, and it can be learned."""

from __future__ import annotations

import pytest
import torch

from polyact.errors import ConfigError
from polyact.policies import PolicyConfig
from polyact.policies.vla import FUTURE_PIXELS


def future_batch(synthetic, spec, pad: list[bool]) -> dict:
    batch = synthetic["batch"](spec, batch=len(pad), history=2, chunk=4, seed=2)
    frames = torch.zeros(len(pad), 32, 32, 3, dtype=torch.uint8)
    frames[:, :16] = 200  # the top half bright: the targets of the top tokens differ from the bottom ones
    batch["future/rgb/corner"] = frames
    batch["future_is_pad"] = torch.tensor(pad)
    return batch


def test_targets_are_each_tokens_patch_of_the_frame_ahead(synthetic):
    spec = synthetic["spec"]()
    policy = synthetic["policy"]("l1", spec=spec, future_frames=3)
    g = policy.config.vision.grid
    targets = policy.future_targets(future_batch(synthetic, spec, [False]), "corner")
    assert targets.shape == (1, g * g, 3 * FUTURE_PIXELS**2)
    bright, dark = (200 - 120) / 30, (0 - 120) / 30  # the stats' mean 120, std 30 per channel
    rows = targets[0].reshape(g, g, -1)
    torch.testing.assert_close(rows[0], torch.full_like(rows[0], bright))
    torch.testing.assert_close(rows[-1], torch.full_like(rows[-1], dark))


def test_the_loss_skips_windows_without_a_future_and_is_learned(synthetic):
    spec = synthetic["spec"]()
    policy = synthetic["policy"]("l1", spec=spec, future_frames=3)
    _, metrics = policy.compute_loss(future_batch(synthetic, spec, [True, True, True]))
    assert float(metrics["future_mse"]) == 0.0
    batch = future_batch(synthetic, spec, [False, True, False])
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, metrics = policy.compute_loss(batch)
        first = first if first is not None else float(metrics["future_mse"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 0 and float(metrics["future_mse"]) < 0.5 * first


def test_bad_future_settings_are_refused():
    with pytest.raises(ConfigError, match="future_frames and future_weight must be >= 0"):
        PolicyConfig(future_frames=-1)

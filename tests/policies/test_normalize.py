"""The state normaliser's std floor: a dimension that barely varied in the demonstrations must not turn a
sub-millimetre difference (two simulators' resting contacts) into many standard deviations."""

from __future__ import annotations

import torch

from polyact.policies.normalize import MIN_STD, Normalizer


def _state_normalizer(mean: list[float], std: list[float]) -> Normalizer:
    norm = Normalizer({"state": "mean_std"}, {"state": (len(mean),)})
    norm.load_statistics({"state": {"mean": mean, "std": std}})
    return norm


def test_a_nearly_constant_dimension_is_scaled_by_the_floor():
    mean, std = [0.02229, 0.0, 0.5], [1e-5, 0.0, 0.25]  # a resting block's height, a constant, a joint
    norm = _state_normalizer(mean, std)
    assert norm.stat("state", "std").tolist() == torch.tensor([MIN_STD, MIN_STD, 0.25]).tolist()
    shifted = torch.tensor(mean, dtype=torch.float64) + 1e-4
    y = norm.normalize("state", shifted.float())
    torch.testing.assert_close(y, torch.tensor([0.1, 0.1, 4e-4]), rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(norm.unnormalize("state", y), shifted.float())


def test_checkpoints_saved_before_the_floor_keep_their_stds():
    """A saved policy's statistics are its buffers, loaded as they were: the floor applies to statistics
    loaded from a dataset, so an older checkpoint acts exactly as it did."""
    norm = Normalizer({"state": "mean_std"}, {"state": (2,)})
    norm.load_state_dict({"state__mean": torch.zeros(2), "state__std": torch.tensor([1e-5, 0.0])})
    y = norm.normalize("state", torch.tensor([1e-4, 1e-4]))
    torch.testing.assert_close(y, torch.tensor([10.0, 1e-4]))

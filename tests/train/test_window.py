"""The loop's device-side interval: losses averaged, the first non-finite step remembered, reset on read."""

from __future__ import annotations

import math

import pytest
import torch

from polyact.train.distributed import Dist
from polyact.train.window import TrainingWindow

SINGLE = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def test_an_interval_averages_its_losses_and_starts_afresh():
    window = TrainingWindow(torch.device("cpu"))
    for step, loss in enumerate((1.0, 2.0, 6.0), start=1):
        window.add(step, torch.tensor(loss), torch.tensor(0.5 * step))
    reading = window.read(SINGLE)
    assert reading.steps == 3 and reading.mean_loss == pytest.approx(3.0)
    assert reading.grad_norm == pytest.approx(1.5) and reading.first_bad_step is None
    window.add(4, torch.tensor(10.0), torch.tensor(1.0))
    assert window.read(SINGLE).mean_loss == pytest.approx(10.0)


@pytest.mark.parametrize(("loss", "norm"), [(math.nan, 1.0), (1.0, math.inf), (math.inf, math.nan)])
def test_the_first_non_finite_step_is_named(loss, norm):
    window = TrainingWindow(torch.device("cpu"))
    window.add(7, torch.tensor(1.0), torch.tensor(1.0))
    window.add(8, torch.tensor(loss), torch.tensor(norm))
    window.add(9, torch.tensor(math.nan), torch.tensor(math.nan))  # later bad steps do not move it
    assert window.read(SINGLE).first_bad_step == 8
    assert window.read(SINGLE).first_bad_step is None  # the next interval starts clean

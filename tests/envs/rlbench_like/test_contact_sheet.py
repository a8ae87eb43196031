"""The contact sheet helper lays out five labelled camera images per task."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.envs.rlbench_like.contact_sheet import LABEL_HEIGHT, contact_sheet
from polyact.envs.rlbench_like.scene import CAMERAS


@pytest.mark.slow
def test_contact_sheet_has_a_row_of_five_cameras_per_task():
    size = 32
    sheet = contact_sheet(("reach_target", "turn_tap"), size=size)
    assert sheet.size == (len(CAMERAS) * size, LABEL_HEIGHT + 2 * (size + LABEL_HEIGHT))
    pixels = np.asarray(sheet)
    row = pixels[2 * LABEL_HEIGHT : 2 * LABEL_HEIGHT + size]
    for i in range(len(CAMERAS)):  # every camera image has content, not a blank tile
        assert row[:, i * size : (i + 1) * size].std() > 5

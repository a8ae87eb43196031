"""The MJX model of a task: the CPU model in a narrower collision scope, and the tasks MJX cannot run refused."""

from __future__ import annotations

import numpy as np
import pytest
from mujoco import mjx

from polyact.envs.rlbench_like import TASKS
from polyact.envs.rlbench_like.mjx.model import SUPPORTED_TASKS, mjx_model, out_of_scope, unsupported_pairs
from polyact.envs.rlbench_like.scene import build_model
from polyact.errors import ConfigError


@pytest.mark.parametrize("task", SUPPORTED_TASKS)
def test_supported_tasks_go_on_mjx_with_only_the_hand_fingers_and_props_colliding(task):
    cpu = build_model(TASKS[task]().build)
    assert unsupported_pairs(cpu)  # the full scene is what MJX refuses
    model = mjx_model(TASKS[task]())
    off = out_of_scope(model)
    assert not (model.geom_contype[off] | model.geom_conaffinity[off]).any()
    kept = np.flatnonzero(model.geom_contype | model.geom_conaffinity)
    assert model.geom("left_pad").id in kept and model.geom("table_top").id in kept
    np.testing.assert_array_equal(model.body_pos, cpu.body_pos)  # the same scene otherwise
    assert mjx.put_model(model).ngeom == cpu.ngeom


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        ("push_buttons", "no collision function"),
        ("turn_tap", "no collision function"),
        ("open_drawer", "not validated"),
    ],
)
def test_other_tasks_are_refused_with_the_reason(task, reason):
    with pytest.raises(ConfigError, match=reason):
        mjx_model(TASKS[task]())

"""The success tests of the MJX tasks in JAX, on mjx.Data, with the thresholds of the task modules (one
definition: each test below reads its task's constant and mirrors its `success`)."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import mujoco
from mujoco import mjx

from polyact.envs.rlbench_like.tasks import pick_and_lift, reach_target, slide_block

SuccessFn = Callable[[mjx.Data], jnp.ndarray]


def success_fn(task: str, model: mujoco.MjModel) -> SuccessFn:
    """`data -> bool ()` for one environment (vmap it for a batch)."""
    body, site = (lambda n: model.body(n).id), (lambda n: model.site(n).id)
    if task == "reach_target":
        tcp, sphere = site("tcp"), body("sphere0")
        return lambda d: jnp.linalg.norm(d.site_xpos[tcp] - d.xpos[sphere]) < reach_target.TOLERANCE
    if task == "pick_and_lift":
        block = body("block0")
        return lambda d: d.xpos[block, 2] > pick_and_lift.LIFT_Z
    if task == "slide_block_to_color_target":
        block, pad = body("block"), body("pad0")
        return lambda d: jnp.linalg.norm(d.xpos[block, :2] - d.xpos[pad, :2]) < slide_block.TOLERANCE
    raise KeyError(task)  # mjx_model has refused every other task before this is asked

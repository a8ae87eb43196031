"""The MJX model of one task: the MjModel the CPU backend compiles (scene.build_model with the task's
`build`), with a narrower collision scope, and the tasks MJX cannot run refused with the reason.

Collision scope. MJX checks every candidate geom pair at every step, with no broad phase to skip the
far ones, and its constraint solver works on dense matrices sized by the worst case; the full scene gives
reach_target 192 contact slots and 634 constraint rows, and on a 2-core CPU one physics step took 0.4 s.
So the MJX copy keeps the contacts a task can make: the hand and fingers with the props and the table
top, and the props with each other and the table top. Out of collision go the floor and the table legs
(nothing reaches them) and the arm's links below the hand (seven capsules and four cylinders; MJX 3.3.0
has no cylinder-box collision function at all, mujoco/mjx/_src/collision_driver.py). On the CPU
backend the experts of SUPPORTED_TASKS never touch anything with those links (seeds 0-3 of each,
checked with a contact check), so on their trajectories the narrower scope changes nothing.
A task whose props hold a pair MJX cannot collide (buttons, jars, bottles, taps: cylinders the fingers
touch) is refused with the pairs named.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np
from mujoco.mjx._src import collision_driver

from polyact.envs.rlbench_like.scene import build_model
from polyact.envs.rlbench_like.tasks.base import Task
from polyact.errors import ConfigError

# The tasks the MJX backend is built for (their collisions fit MJX and the scope above). Their
# equivalence with the CPU backend is still to be tested (issue #17); other tasks whose collisions MJX
# supports are refused until they are.
SUPPORTED_TASKS = ("reach_target", "pick_and_lift", "slide_block_to_color_target")


# Robot bodies that keep their contacts on MJX.
CONTACT_BODIES = ("hand", "left_finger", "right_finger")


def out_of_scope(model: mujoco.MjModel) -> np.ndarray:
    """Geom ids taken out of collision on MJX: the arm's links, the floor, the table's legs."""
    robot = model.body_rootid[model.geom_bodyid] == model.body_rootid[model.body("hand").id]
    kept = np.isin(model.geom_bodyid, [model.body(b).id for b in CONTACT_BODIES])
    table = model.geom_bodyid == model.body("table").id
    legs = table & (np.arange(model.ngeom) != model.geom("table_top").id)
    return np.flatnonzero((robot & ~kept) | legs | (np.arange(model.ngeom) == model.geom("floor").id))


def unsupported_pairs(model: mujoco.MjModel) -> list[str]:
    """'body (type) / body (type)' for every colliding geom pair MJX has no function for."""
    found = set()
    for g1, g2, _ in collision_driver.geom_pairs(model):
        t1, t2 = model.geom_type[[g1, g2]]
        if not collision_driver.has_collision_fn(t1, t2):
            a, b = (model.body(model.geom_bodyid[g]).name for g in (g1, g2))
            found.add(f"{a} ({mujoco.mjtGeom(t1).name[7:].lower()}) / {b} ({mujoco.mjtGeom(t2).name[7:].lower()})")
    return sorted(found)


def _welded_props_as_mocap(task: Task) -> Callable[[mujoco.MjSpec], None]:
    """The task's `build`, then every welded leaf body of the world (the table, pads, targets: no joint, no
    child body) made a mocap body. Physics are unchanged (mocap bodies are static, as welded ones), but
    their poses move from the model (body_pos, body_quat) to the data (mocap_pos, mocap_quat), which is
    per environment: batching model fields instead made a vmapped physics step 45x slower on this CPU."""

    def build(spec: mujoco.MjSpec) -> None:
        task.build(spec)
        for body in spec.worldbody.bodies:
            if not body.joints and not body.bodies:
                body.mocap = True

    return build


def mjx_model(task: Task) -> mujoco.MjModel:
    """The task's CPU model in the MJX collision scope, its welded props as mocap bodies; refuses what MJX
    cannot run."""
    model = build_model(_welded_props_as_mocap(task))
    off = out_of_scope(model)
    model.geom_contype[off] = 0
    model.geom_conaffinity[off] = 0
    pairs = unsupported_pairs(model)
    if pairs:
        shown = "; ".join(pairs[:4]) + (f"; and {len(pairs) - 4} more" if len(pairs) > 4 else "")
        raise ConfigError(
            f"{task.name} cannot run on MJX: MJX 3.3.0 has no collision function for these pairs, which the "
            f"task's props need: {shown}. MJX tasks: {', '.join(SUPPORTED_TASKS)}"
        )
    if task.name not in SUPPORTED_TASKS:
        raise ConfigError(
            f"{task.name} is not validated on MJX (its collisions are supported, but no test compares it with "
            f"the CPU backend yet). MJX tasks: {', '.join(SUPPORTED_TASKS)}"
        )
    return model

"""stack_cups: stack the other two cups inside the cup of the named colour (three tapered cups).

RLBench `rlbench/tasks/stack_cups.py` (stepjam/RLBench): three cups, the target painted the variation's
colour and the other two random other colours; one variation per colour of `rlbench.const.colors` (20
variations). Here the suite's palette gives 9 (held out: the unseen colours). What differs, and why:
RLBench's cups are meshes; these are a bottom plate and a ring of twelve tilted box staves (a truncated
cone, as MJX collides only convex parts), and they nest as RLBench's do, each about 2.5 cm above the
bottom of the one below. RLBench's instruction "place two of the cups onto the odd cup out" is left
out: every instruction here names the colour. Cups stand 14 cm apart (RLBench: 5 cm), room for the
fingers, which pinch a cup's wall at the rim.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.rotations import axis_angle, quat_mul, yaw_quat
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Privileged, Script, Task
from polyact.envs.rlbench_like.tasks.common import pick, place, scatter
from polyact.envs.rlbench_like.variations import COLOURS, Variation, colour_variations, distractor_pool

N_CUPS = 3  # cup0 is the target (the base of the stack)
BOTTOM_R, TOP_R = 0.026, 0.040  # radius of the wall's mid-plane at the bottom and at the rim
HEIGHT, WALL = 0.07, 0.004
SIDES = 12
TAPER = (TOP_R - BOTTOM_R) / HEIGHT  # radius gained per metre of height
NEST = WALL * np.hypot(1.0, TAPER) / TAPER  # how far a cup rests above the bottom of the cup it sits in
GRASP_DEPTH = 0.008  # tcp below the rim when pinching the wall (fingertips 1 cm lower)
TOLERANCE = 0.012  # success: a cup's axis this close (xy) to the target cup's axis
MAX_TILT = 0.35  # rad: success: every cup this close to upright


def add_cup(
    b: mujoco.MjsBody, bottom_r: float, top_r: float, height: float, rgba=props.WHITE, mass: float = 0.05
) -> None:
    """An open cup standing on its body's origin: a bottom and, on it, SIDES box staves WALL thick tilted
    out to the rim (convex parts make the concave shell; only the bottom touches the table, which keeps
    contacts few). Stave widths meet at mid height, so the rim has small gaps."""
    slope = np.arctan2(top_r - bottom_r, height)
    mid_z = (height + WALL) / 2
    mid_r = bottom_r + (top_r - bottom_r) * mid_z / height
    half_width = (mid_r + WALL / 2) * np.tan(np.pi / SIDES)
    size = (WALL / 2, half_width, (height - WALL) / np.cos(slope) / 2)
    base = bottom_r + WALL / 2
    props.geom(b, props.CYLINDER, (base, WALL / 2), rgba, pos=(0, 0, WALL / 2), collide=False)
    # What it stands on: a square inside the disc (a cylinder on a plane gets one contact and rocks).
    square = base / np.sqrt(2)
    props.geom(b, props.BOX, (square, square, WALL / 2), rgba, pos=(0, 0, WALL / 2), mass=mass / 4)
    for k in range(SIDES):
        angle = 2 * np.pi * k / SIDES
        quat = quat_mul(yaw_quat(angle), axis_angle(np.array([0.0, 1.0, 0.0]), slope))
        pos = (mid_r * np.cos(angle), mid_r * np.sin(angle), mid_z)
        props.geom(b, props.BOX, size, rgba, pos=pos, quat=quat, mass=0.75 * mass / SIDES)


def upright(sim: Sim, body: str) -> bool:
    """The body's z axis within MAX_TILT of vertical."""
    return bool(sim.data.xmat[sim.model.body(body).id][8] > np.cos(MAX_TILT))


class StackCups(Task):
    name = "stack_cups"

    def build(self, spec: mujoco.MjSpec) -> None:
        for i in range(N_CUPS):
            add_cup(props.body(spec.worldbody, f"cup{i}", free=True), BOTTOM_R, TOP_R, HEIGHT)

    def variations(self) -> tuple[Variation, ...]:
        return colour_variations(
            [
                "stack the other cups on top of the {colour} cup",
                "put the remaining two cups on top of the {colour} cup",
                "pick up and set the cups down into the {colour} cup",
                "create a stack of cups with the {colour} cup as its base",
                "keeping the {colour} cup on the table, stack the other two onto it",
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        """As RLBench, the other two colours are drawn independently (they may match each other)."""
        colour = variation.params["colour"]
        others = rng.choice(distractor_pool(variation, [colour]), N_CUPS - 1, replace=True)
        for i, (xy, c) in enumerate(zip(scatter(rng, N_CUPS, 0.14), [colour, *others], strict=True)):
            sim.place(f"cup{i}", [xy[0], xy[1], 0.0], yaw=rng.uniform(-np.pi, np.pi))
            sim.paint(f"cup{i}", COLOURS[str(c)])

    def success(self, sim: Sim) -> bool:
        """Both other cups sit inside the target cup, which stands on the table, and no finger touches a cup.

        RLBench `rlbench/tasks/stack_cups.py`: `DetectedCondition(cup1, success)`, `DetectedCondition(cup3,
        success)` and `NothingGrasped(gripper)`, the proximity sensor `success` inside the target cup (its
        volume is in the `.ttm`). Here "inside" is geometric: a cup's axis within TOLERANCE of the target's,
        its bottom above the target's and below its rim; and the target must still stand upright on the
        table. `NothingGrasped` is "no finger in contact with any cup" (our grasps are friction).
        """
        base = sim.pos("cup0")
        if base[2] > 0.01 or not upright(sim, "cup0") or any(sim.held(f"cup{i}") for i in range(N_CUPS)):
            return False
        for i in range(1, N_CUPS):
            pos = sim.pos(f"cup{i}")
            inside = 0.0 < pos[2] - base[2] < HEIGHT and np.linalg.norm(pos[:2] - base[:2]) < TOLERANCE
            if not (inside and upright(sim, f"cup{i}")):
                return False
        return True

    def privileged(self, sim: Sim) -> Privileged:
        """Cup positions (the bottom centres) and yaws, the target first."""
        return {
            "cup_pos": [sim.pos(f"cup{i}") for i in range(N_CUPS)],
            "cup_yaw": [sim.yaw(f"cup{i}") for i in range(N_CUPS)],
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        """Pinch each other cup's wall at the rim, carry it over the top of the stack, and drop it in from
        just above where it nests."""
        for i in range(1, N_CUPS):
            s = p()["task"]
            yaw, rim = _rim_grasp(s["cup_pos"][i], s["cup_yaw"][i])
            yield from pick(rim, yaw, lift_to=0.24)
            s = p()["task"]
            offset = s["cup_pos"][i] - p()["target_pos"]  # the held cup's bottom relative to the commanded tcp
            top = s["cup_pos"][i - 1]  # the cup placed last (the target cup for the first one)
            drop = np.array([s["cup_pos"][0][0], s["cup_pos"][0][1], top[2] + NEST + 0.008])
            yield from place(drop - offset, yaw, retreat_to=0.24)


def _rim_grasp(cup: np.ndarray, cup_yaw: float) -> tuple[float, np.ndarray]:
    """(gripper yaw, tcp) pinching the wall at the stave nearest the world y axis, so the yaw stays small:
    the fingers close along the cup's radius there, one inside the cup, one outside."""
    step = 2 * np.pi / SIDES
    angle = cup_yaw + step * np.round((np.pi / 2 - cup_yaw) / step)  # the stave closest to +y
    z = HEIGHT - GRASP_DEPTH
    radius = BOTTOM_R + TAPER * z
    tcp = cup + [radius * np.cos(angle), radius * np.sin(angle), z]
    return float(angle - np.pi / 2), tcp

"""put_groceries_in_cupboard: put the named grocery item on the cupboard's shelf.

Three of six groceries are on the table in each episode; two of the six are held out as targets.
The cupboard is open at the front (facing the robot); the expert carries the item in level, high
enough to clear the shelf's lip, then lowers it onto the shelf.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, OPEN, Privileged, Script, Task, Waypoint
from polyact.envs.rlbench_like.tasks.common import GRIP_STEPS, grasp_yaw, pick, scatter
from polyact.envs.rlbench_like.variations import Variation, enumerate_variations

SHELF = 0.1  # shelf top height
CUP_D, CUP_W, CUP_H = 0.1, 0.16, 0.5  # half depth, half width, total height
WOOD = (0.55, 0.40, 0.28, 1.0)
# name: (kind, size, rgba, half height, split as a target); boxes are narrowest along x, within the grip
GROCERIES = {
    "soup can": (props.CYLINDER, (0.028, 0.04), (0.85, 0.15, 0.12, 1), 0.04, "train"),
    "mustard bottle": (props.CYLINDER, (0.022, 0.05), (0.95, 0.82, 0.1, 1), 0.05, "train"),
    "sugar box": (props.BOX, (0.025, 0.04, 0.045), (0.95, 0.95, 0.92, 1), 0.045, "train"),
    "jello box": (props.BOX, (0.03, 0.03, 0.02), (0.9, 0.4, 0.6, 1), 0.02, "train"),
    "spam tin": (props.BOX, (0.025, 0.045, 0.022), (0.15, 0.3, 0.75, 1), 0.022, "test"),
    "tuna can": (props.CYLINDER, (0.032, 0.015), (0.3, 0.55, 0.6, 1), 0.015, "test"),
}
N_ON_TABLE = 3


def _body(name: str) -> str:
    return name.replace(" ", "_")


class PutGroceriesInCupboard(Task):
    name = "put_groceries_in_cupboard"

    def build(self, spec: mujoco.MjSpec) -> None:
        cup = props.body(spec.worldbody, "cupboard")
        props.geom(cup, props.BOX, (CUP_D, CUP_W, SHELF / 2), WOOD, pos=(0, 0, SHELF / 2))
        props.geom(cup, props.BOX, (CUP_D, CUP_W, 0.01), WOOD, pos=(0, 0, CUP_H - 0.01))
        props.geom(cup, props.BOX, (0.01, CUP_W, CUP_H / 2), WOOD, pos=(CUP_D - 0.01, 0, CUP_H / 2))
        for sign in (-1, 1):
            props.geom(cup, props.BOX, (CUP_D, 0.01, CUP_H / 2), WOOD, pos=(0, sign * (CUP_W - 0.01), CUP_H / 2))
        for name, (kind, size, rgba, _, _) in GROCERIES.items():
            props.geom(props.body(spec.worldbody, _body(name), free=True), kind, size, rgba, mass=0.06)

    def variations(self) -> tuple[Variation, ...]:
        return enumerate_variations(
            [
                (
                    split,
                    {"item": g},
                    [
                        f"put the {g} in the cupboard",
                        f"place the {g} on the cupboard shelf",
                        f"move the {g} into the cupboard",
                    ],
                )
                for g, (*_, split) in GROCERIES.items()
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._item = variation.params["item"]
        x, y = rng.uniform(0.64, 0.7), rng.uniform(-0.1, 0.1)
        self._yaw = float(np.arctan2(y, x)) + rng.uniform(-0.2, 0.2)
        sim.move_fixed("cupboard", [x, y, 0.0], yaw=self._yaw)
        others = [g for g in GROCERIES if g != self._item]
        chosen = [self._item, *rng.choice(others, N_ON_TABLE - 1, replace=False)]
        spots = scatter(rng, N_ON_TABLE, 0.11, x=(0.33, 0.48))
        for g in GROCERIES:
            if g not in chosen:
                sim.hide(_body(g))
        for g, xy in zip(chosen, spots, strict=True):
            sim.place(_body(str(g)), [xy[0], xy[1], GROCERIES[str(g)][3]], yaw=rng.uniform(-np.pi, np.pi))

    def success(self, sim: Sim) -> bool:
        cup = sim.model.body("cupboard").id
        rot = sim.data.xmat[cup].reshape(3, 3)
        local = rot.T @ (sim.pos(_body(self._item)) - sim.data.xpos[cup])
        inside = abs(local[0]) < CUP_D - 0.01 and abs(local[1]) < CUP_W - 0.02 and SHELF < local[2] < SHELF + 0.12
        return bool(inside and not sim.held(_body(self._item)))

    def privileged(self, sim: Sim) -> Privileged:
        body = _body(self._item)
        return {
            "item_pos": sim.pos(body),
            "item_yaw": sim.yaw(body),
            "half_height": GROCERIES[self._item][3],
            "cupboard_pos": sim.pos("cupboard"),
            "cupboard_yaw": self._yaw,
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        half = s["half_height"]
        grip_below_top = min(0.015, half)  # hold the item by its top
        tcp_above_centre = half - grip_below_top + 0.01
        # Boxes are narrowest along their x: the fingers (along the tcp's y) close across it.
        yaw = grasp_yaw(s["item_yaw"] + np.pi / 2, np.pi)
        carry = SHELF + 2 * half + 0.04 + (tcp_above_centre - half)  # item bottom 4 cm above the shelf
        yield from pick(s["item_pos"] + [0, 0, tcp_above_centre], yaw, lift_to=carry)
        a = np.array([np.cos(s["cupboard_yaw"]), np.sin(s["cupboard_yaw"]), 0.0])  # into the cupboard
        inside = s["cupboard_pos"] + 0.01 * a
        outside = s["cupboard_pos"] - (CUP_D + 0.1) * a
        yield Waypoint(np.array([outside[0], outside[1], carry]), yaw, CLOSE)
        yield Waypoint(np.array([inside[0], inside[1], carry]), yaw, CLOSE, speed=0.2)
        down = np.array([inside[0], inside[1], SHELF + half + tcp_above_centre + 0.005])
        yield Waypoint(down, yaw, CLOSE, speed=0.12)
        yield Waypoint(down, yaw, OPEN, dwell=GRIP_STEPS)
        # Up off the item before backing out: open fingers pulled straight out drag it off the shelf.
        yield Waypoint(down + [0.0, 0.0, 0.04], yaw, OPEN, speed=0.15)
        yield Waypoint(np.array([outside[0], outside[1], down[2] + 0.04]), yaw, OPEN, speed=0.25)

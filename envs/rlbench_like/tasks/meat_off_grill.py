"""meat_off_grill: take the named piece of meat off the grill and put it on the table.

All three pieces are on the grill in every episode; the sausage is held out as a target (it is only
ever a distractor in train variations).
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Privileged, Script, Task
from polyact.envs.rlbench_like.tasks.common import grasp_yaw, pick, place
from polyact.envs.rlbench_like.variations import Variation, enumerate_variations

GRILL_HALF = (0.1, 0.15, 0.04)  # x, y, z; the grate's top is at 2 * z
GRILL_TOP = 2 * GRILL_HALF[2]
# name: (geom kind, size, rgba, half height when lying, split as a target)
MEATS = {
    "chicken": (props.CAPSULE, (0.02, 0.03), (0.86, 0.66, 0.40, 1), 0.02, "train"),
    "steak": (props.BOX, (0.045, 0.03, 0.012), (0.50, 0.16, 0.10, 1), 0.012, "train"),
    "sausage": (props.CAPSULE, (0.014, 0.035), (0.72, 0.32, 0.22, 1), 0.014, "test"),
}
_LYING = [np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0]  # capsules lie along their body's x axis


class MeatOffGrill(Task):
    name = "meat_off_grill"

    def build(self, spec: mujoco.MjSpec) -> None:
        grill = props.body(spec.worldbody, "grill")
        props.geom(grill, props.BOX, GRILL_HALF, (0.18, 0.18, 0.2, 1), pos=(0, 0, GRILL_HALF[2]))
        for k in range(-4, 5):  # the grate: visual bars on the top
            props.geom(
                grill,
                props.BOX,
                (0.004, GRILL_HALF[1] - 0.01, 0.002),
                (0.45, 0.45, 0.47, 1),
                pos=(k * 0.022, 0, GRILL_TOP + 0.001),
                collide=False,
            )
        for name, (kind, size, rgba, _, _) in MEATS.items():
            b = props.body(spec.worldbody, name, free=True)
            props.geom(b, kind, size, rgba, mass=0.05, quat=_LYING if kind == props.CAPSULE else None)

    def variations(self) -> tuple[Variation, ...]:
        return enumerate_variations(
            [
                (
                    split,
                    {"meat": m},
                    [f"take the {m} off the grill", f"remove the {m} from the grill", f"put the {m} on the table"],
                )
                for m, (*_, split) in MEATS.items()
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._meat = variation.params["meat"]
        centre = np.array([rng.uniform(0.5, 0.58), rng.uniform(-0.2, 0.2)])
        sim.move_fixed("grill", [centre[0], centre[1], 0.0])
        for name, slot in zip(MEATS, rng.permutation(3), strict=True):
            y = centre[1] + (slot - 1) * 0.09
            x = centre[0] + rng.uniform(-0.03, 0.03)
            sim.place(name, [x, y, GRILL_TOP + MEATS[name][3]], yaw=rng.uniform(-0.4, 0.4))
        side = -1.0 if centre[1] > 0 else 1.0  # put it down on the side with more table
        self._spot = np.array([centre[0] - 0.05, centre[1] + side * 0.27])

    def success(self, sim: Sim) -> bool:
        pos, grill = sim.pos(self._meat), sim.pos("grill")
        off = abs(pos[0] - grill[0]) > GRILL_HALF[0] + 0.01 or abs(pos[1] - grill[1]) > GRILL_HALF[1] + 0.01
        return bool(off and pos[2] < 0.04 and not sim.held(self._meat))

    def privileged(self, sim: Sim) -> Privileged:
        return {
            "meat_pos": sim.pos(self._meat),
            "meat_yaw": sim.yaw(self._meat),
            "spot": self._spot,
            "half_height": MEATS[self._meat][3],
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        yaw = grasp_yaw(s["meat_yaw"], np.pi)  # fingers along the piece's y: across its length
        yield from pick(s["meat_pos"] + [0, 0, 0.002], yaw, lift_to=0.2)
        yield from place(np.array([*s["spot"], s["half_height"] + 0.006]), yaw)

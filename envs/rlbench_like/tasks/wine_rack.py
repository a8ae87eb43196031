"""place_wine_at_rack_location: lay the wine bottle in the named slot (left, middle, right) of a wine rack.
Held out: the middle slot, as for the drawers.

The rack is a low base facing the robot with three cradles side by side; each cradle is a pair of guide
blocks at its front and a pair at its back, between which the bottle lies pointing into the rack. Left
and right are the robot's. The bottle starts lying on the table; the expert grasps it by its middle
(the fingers fit between a cradle's front and back guides), turns it to point into the rack and lays
it in the cradle.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Privileged, Script, Task
from polyact.envs.rlbench_like.tasks.common import grasp_yaw, pick, place, scatter
from polyact.envs.rlbench_like.variations import Variation, choice_variations

SLOTS = {"middle": 0.0, "left": 0.1, "right": -0.1}  # cradle y on the rack (the robot's left is +y); RLBench's order
TEST_SLOTS = ("middle",)
RACK_D = 0.09  # half depth of the rack's base
BASE_TOP = 0.02
GUIDE_X = 0.06  # the guides' centres in front of and behind a cradle's centre
GUIDE = (0.01, 0.007, 0.0125)  # guide block half sizes; 2.5 cm high
BODY_R, BODY_HALF = 0.03, 0.065  # the bottle's body; its origin is the body's centre, its axis the body's x
NECK_R, NECK_HALF = 0.012, 0.035
GUIDE_Y = BODY_R + 0.004 + GUIDE[1]  # guide centres either side of the cradle's axis: 4 mm of play
LYING = [np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0]  # turns a cylinder's axis (z) onto the body's x
TILT = np.cos(0.3)  # success: the bottle's axis within 0.3 rad of the cradle's
WOOD = (0.5, 0.32, 0.2, 1.0)
GLASS = (0.12, 0.3, 0.16, 1.0)


class PlaceWineAtRackLocation(Task):
    """RLBench `rlbench/tasks/place_wine_at_rack_location.py` (MohitShridhar/RLBench peract branch, PerAct's
    task).

    RLBench: 3 variations, the rack location (`variation_count`, `:62-63`; `locations` `:17`: middle, left,
    right, the order kept here); success (`:29-32`) is `DetectedCondition(wine_bottle,
    ProximitySensor('success_<location>'))` and `NothingGrasped(gripper)`.

    Differences: RLBench's bottle starts standing and is turned to lie on its side as it slides into the
    rack; a pointing-down gripper cannot turn a bottle level, so here it starts lying on the table and is
    laid in a cradle from above. The sensors' volumes are in RLBench's `.ttm`; here the sensor is a
    geometric test (see `success`). `NothingGrasped` is "no finger in contact with the bottle": our grasps
    are friction, not RLBench's attach-on-grasp.
    """

    name = "place_wine_at_rack_location"

    def build(self, spec: mujoco.MjSpec) -> None:
        rack = props.body(spec.worldbody, "rack")
        half_width = max(SLOTS.values()) + GUIDE_Y + 0.02
        props.geom(rack, props.BOX, (RACK_D, half_width, BASE_TOP / 2), WOOD, pos=(0, 0, BASE_TOP / 2))
        for name, y in SLOTS.items():
            cradle = props.body(rack, f"cradle_{name}", pos=(0, y, BASE_TOP))
            for sx in (-1, 1):
                for sy in (-1, 1):
                    props.geom(cradle, props.BOX, GUIDE, WOOD, pos=(sx * GUIDE_X, sy * GUIDE_Y, GUIDE[2]))
        bottle = props.body(spec.worldbody, "bottle", free=True)
        props.geom(bottle, props.CYLINDER, (BODY_R, BODY_HALF), GLASS, quat=LYING, mass=0.25)
        neck = (BODY_HALF + NECK_HALF, 0, 0)
        props.geom(bottle, props.CYLINDER, (NECK_R, NECK_HALF), GLASS, pos=neck, quat=LYING, mass=0.03)

    def variations(self) -> tuple[Variation, ...]:
        return choice_variations(
            "slot",
            SLOTS,
            TEST_SLOTS,
            [
                "stack the wine bottle to the {slot} of the rack",
                "slide the bottle onto the {slot} part of the rack",
                "put the wine on the {slot}",
                "leave the wine on the {slot} section of the shelf",
                "grasp the bottle and put it away on the {slot}",
            ],
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._slot = variation.params["slot"]
        x, y = rng.uniform(0.6, 0.66), rng.uniform(-0.1, 0.1)
        # RLBench turns the rack within +-45 degrees; here within +-0.3 rad of facing the robot.
        sim.move_fixed("rack", [x, y, 0.0], yaw=float(np.arctan2(y, x)) + rng.uniform(-0.3, 0.3))
        xy = scatter(rng, 1, 0.0, x=(0.34, 0.42), y=(-0.22, 0.22))[0]
        sim.place("bottle", [xy[0], xy[1], BODY_R], yaw=rng.uniform(-np.pi, np.pi))

    def success(self, sim: Sim) -> bool:
        """The bottle lies in the named cradle, along it, and is let go of: RLBench's sensor and NothingGrasped.

        In the cradle: the bottle's centre within 1 cm of the cradle's axis and 3 cm of its middle, resting
        on the rack, its axis within 0.3 rad of the cradle's (either end first).
        """
        cradle = sim.model.body(f"cradle_{self._slot}").id
        rot = sim.data.xmat[cradle].reshape(3, 3)
        local = rot.T @ (sim.pos("bottle") - sim.data.xpos[cradle])
        axis = rot.T @ sim.data.xmat[sim.model.body("bottle").id].reshape(3, 3)[:, 0]
        inside = abs(local[0]) < 0.03 and abs(local[1]) < 0.01 and -0.005 < local[2] - BODY_R < 0.01
        return bool(inside and abs(axis[0]) > TILT and not sim.held("bottle"))

    def privileged(self, sim: Sim) -> Privileged:
        return {
            "bottle_pos": sim.pos("bottle"),
            "bottle_yaw": sim.yaw("bottle"),
            "rack_yaw": sim.yaw("rack"),
            "cradles": {s: sim.pos(f"cradle_{s}") for s in SLOTS},
            "slot": self._slot,
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        yaw = grasp_yaw(s["bottle_yaw"], np.pi)  # the fingers across the bottle
        yield from pick(s["bottle_pos"], yaw, lift_to=0.2)
        s = p()["task"]
        turn = grasp_yaw(s["rack_yaw"] - s["bottle_yaw"], np.pi)  # along the cradle, whichever end first
        offset = s["bottle_pos"] - p()["target_pos"]  # the bottle's centre relative to the commanded tcp
        c, w = np.cos(turn), np.sin(turn)
        offset[:2] = [c * offset[0] - w * offset[1], w * offset[0] + c * offset[1]]  # as it will be, turned
        cradle = s["cradles"][s["slot"]]
        yield from place(cradle + [0, 0, BODY_R + 0.004] - offset, yaw + turn)

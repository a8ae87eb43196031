"""light_bulb_in: take the light bulb from the holder of the named colour (of two) and put it in the lamp.

Each holder is a coloured stand with a socket that the bulb's base stands in; the lamp has the same
socket on a post. The expert holds the bulb by its glass and lowers its base into the lamp's socket.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Privileged, Script, Task
from polyact.envs.rlbench_like.tasks.common import pick, place, scatter
from polyact.envs.rlbench_like.variations import COLOURS, Variation, colour_variations, distractor_pool

BASE_R, BASE_HALF = 0.011, 0.014  # the bulb's screw base; the bulb's origin is its bottom
GLASS_R = 0.024
GLASS_Z = 2 * BASE_HALF + 0.018  # glass centre above the bulb's bottom
SOCKET_INNER, SOCKET_OUTER, SOCKET_HALF_H = 0.016, 0.026, 0.013  # square socket half sizes
HOLDER_FLOOR = 0.03  # socket floor above the table, on a holder
LAMP_FLOOR = 0.12  # socket floor above the table, on the lamp
SEATED = 0.008  # success: the bulb's bottom within this of the lamp's socket floor
UPRIGHT = np.cos(0.3)
BRASS = (0.78, 0.66, 0.35, 1.0)
GLASS = (0.95, 0.95, 0.85, 1.0)


def _socket(b: mujoco.MjsBody, floor: float) -> None:
    """A square socket whose floor is `floor` above the body's origin."""
    outer, inner = (SOCKET_OUTER, SOCKET_OUTER), (SOCKET_INNER, SOCKET_INNER)
    props.frame_of_boxes(b, outer, inner, SOCKET_HALF_H, props.GREY, z=floor + SOCKET_HALF_H)


class LightBulbIn(Task):
    """RLBench `rlbench/tasks/light_bulb_in.py` (MohitShridhar/RLBench peract branch, PerAct's task).

    RLBench: 20 variations, one per colour of `rlbench/const.py` (`variation_count`, `:55-56`), the other
    holder painted another colour; success (`:41-44`) is `DetectedCondition(bulb_phys<target>,
    ProximitySensor('success'))` (a sensor in the lamp) and `NothingGrasped(gripper)`.

    Differences: the variations are this suite's nine colours (three held out as test colours), as for
    the other colour tasks. No thread is simulated: RLBench screws the bulb in, here its base is lowered
    into a square socket, and the sensor is a geometric test of the bulb seated in it (see `success`).
    `NothingGrasped` is "no finger in contact with the bulb": our grasps are friction, not RLBench's
    attach-on-grasp.
    """

    name = "light_bulb_in"

    def build(self, spec: mujoco.MjSpec) -> None:
        lamp = props.body(spec.worldbody, "lamp")
        props.geom(lamp, props.CYLINDER, (0.06, 0.01), props.DARK, pos=(0, 0, 0.01))
        post = (LAMP_FLOOR - 0.02) / 2  # from the foot up to the socket's floor
        props.geom(lamp, props.CYLINDER, (0.012, post), props.DARK, pos=(0, 0, 0.02 + post))
        props.geom(lamp, props.BOX, (SOCKET_OUTER, SOCKET_OUTER, 0.005), props.GREY, pos=(0, 0, LAMP_FLOOR - 0.005))
        _socket(lamp, LAMP_FLOOR)
        for i in range(2):
            holder = props.body(spec.worldbody, f"holder{i}")
            stand = (0.04, HOLDER_FLOOR / 2)
            props.geom(holder, props.CYLINDER, stand, name=f"holder{i}_stand", pos=(0, 0, HOLDER_FLOOR / 2))
            _socket(holder, HOLDER_FLOOR)
            bulb = props.body(spec.worldbody, f"bulb{i}", free=True)
            props.geom(bulb, props.CYLINDER, (BASE_R, BASE_HALF), BRASS, pos=(0, 0, BASE_HALF), mass=0.01)
            props.geom(bulb, props.SPHERE, (GLASS_R,), GLASS, pos=(0, 0, GLASS_Z), mass=0.02)

    def variations(self) -> tuple[Variation, ...]:
        return colour_variations(
            [
                "screw in the {colour} light bulb",
                "screw the light bulb from the {colour} holder into the lamp",
                "put the light bulb from the {colour} casing into the lamp",
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        colour = variation.params["colour"]
        other = str(rng.choice(distractor_pool(variation, [colour])))
        lamp, *holders = scatter(rng, 3, 0.15, x=(0.36, 0.62), y=(-0.25, 0.25))
        sim.move_fixed("lamp", [lamp[0], lamp[1], 0.0])
        for i, (xy, c) in enumerate(zip(holders, (colour, other), strict=True)):
            sim.move_fixed(f"holder{i}", [xy[0], xy[1], 0.0])
            sim.paint(f"holder{i}", COLOURS[c], geoms=[sim.model.geom(f"holder{i}_stand").id])
            sim.place(f"bulb{i}", [xy[0], xy[1], HOLDER_FLOOR + 0.001], yaw=rng.uniform(-np.pi, np.pi))

    def success(self, sim: Sim) -> bool:
        """The named holder's bulb is seated in the lamp and let go of: RLBench's sensor and NothingGrasped.

        Seated: the bulb's bottom within SEATED of the socket's floor, its base inside the socket's walls
        and its axis within 0.3 rad of upright (the sensor's volume is in RLBench's `.ttm`).
        """
        bulb, lamp = sim.pos("bulb0"), sim.pos("lamp")
        axis = sim.data.xmat[sim.model.body("bulb0").id].reshape(3, 3)[:, 2]
        inside = np.all(np.abs(bulb[:2] - lamp[:2]) < SOCKET_INNER - BASE_R + 0.002)
        seated = abs(bulb[2] - lamp[2] - LAMP_FLOOR) < SEATED
        return bool(inside and seated and axis[2] > UPRIGHT and not sim.held("bulb0"))

    def privileged(self, sim: Sim) -> Privileged:
        # holder0 is always painted the named colour; the holders' places are random.
        return {"bulbs": [sim.pos("bulb0"), sim.pos("bulb1")], "target": 0, "lamp_pos": sim.pos("lamp")}

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        target = s["target"]
        yield from pick(s["bulbs"][target] + [0, 0, GLASS_Z], 0.0)
        s = p()["task"]
        offset = s["bulbs"][target] - p()["target_pos"]  # the bulb's bottom relative to the commanded tcp
        yield from place(s["lamp_pos"] + [0, 0, LAMP_FLOOR + 0.004] - offset, 0.0)

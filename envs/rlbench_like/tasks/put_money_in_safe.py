"""put_money_in_safe: put the stack of bank notes on the named shelf (bottom, middle, top) of an open safe.
Held out: the middle shelf, as for the drawers.

The safe stands on the table with its open front facing the robot. The expert holds the stack by its
near end, pointing down, turns it to point into the safe, pushes it in level onto the shelf until the
hand is just short of the safe's front and lets go: most of the stack then lies on the shelf.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, OPEN, Privileged, Script, Task, Waypoint
from polyact.envs.rlbench_like.tasks.common import GRIP_STEPS, grasp_yaw, pick, scatter
from polyact.envs.rlbench_like.variations import Variation, choice_variations

SHELVES = {"bottom": 0.04, "middle": 0.15, "top": 0.26}  # shelf top heights; the bottom one is the floor
TEST_SHELVES = ("middle",)
SAFE_D, SAFE_W = 0.08, 0.11  # half depth, half width; the front (open) side is local -x
ROOF = 0.37  # underside of the roof
WALL = 0.01  # half thickness of walls and shelves
MONEY = (0.078, 0.03, 0.015)  # half sizes: a 15.6 x 6 cm stack of notes, 3 cm thick
GRIP_IN = 0.02  # the tcp this far in from the stack's near end
GRIP_Z = 2 * MONEY[2] - 0.01  # tcp above the stack's bottom: the fingers hold its top 2 cm
HAND_CLEAR = 0.035  # tcp this far in front of the safe's front when the stack is in (the hand is 2.6 cm deep)
STEEL = (0.35, 0.37, 0.4, 1.0)
NOTES = (0.55, 0.68, 0.45, 1.0)


def _angle(v: np.ndarray) -> float:
    return float(np.arctan2(v[1], v[0]))


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class PutMoneyInSafe(Task):
    """RLBench `rlbench/tasks/put_money_in_safe.py` (MohitShridhar/RLBench peract branch, PerAct's task).

    RLBench: 3 variations, the shelf (`variation_count`, `:58-59`; `index_dic` `:16`: bottom, middle, top);
    success (`:20`, `:34-44`) is `NothingGrasped(gripper)` and `DetectedCondition(dollar_stack,
    ProximitySensor('success_detector<shelf>'))`, one sensor per shelf.

    Differences: the safe is three convex-box shelves with no door (RLBench's safe door stands open and
    plays no part). The sensors' volumes are in RLBench's `.ttm`; here the sensor is a geometric test
    (see `success`). The stack is only part-way in when let go of: a pointing-down hand cannot enter a
    9 cm high shelf, so it holds the stack by its near end and stops just short of the safe's front.
    `NothingGrasped` is "no finger in contact with the stack": our grasps are friction, not RLBench's
    attach-on-grasp.
    """

    name = "put_money_in_safe"

    def build(self, spec: mujoco.MjSpec) -> None:
        safe = props.body(spec.worldbody, "safe")
        floor = SHELVES["bottom"]
        height = ROOF + 2 * WALL
        props.geom(safe, props.BOX, (SAFE_D, SAFE_W, floor / 2), STEEL, pos=(0, 0, floor / 2))
        for top in (SHELVES["middle"], SHELVES["top"], ROOF + 2 * WALL):
            props.geom(safe, props.BOX, (SAFE_D, SAFE_W, WALL), STEEL, pos=(0, 0, top - WALL))
        for sign in (-1, 1):
            props.geom(safe, props.BOX, (SAFE_D, WALL, height / 2), STEEL, pos=(0, sign * (SAFE_W - WALL), height / 2))
        props.geom(safe, props.BOX, (WALL, SAFE_W, height / 2), STEEL, pos=(SAFE_D - WALL, 0, height / 2))
        props.geom(props.body(spec.worldbody, "money", free=True), props.BOX, MONEY, NOTES, mass=0.06)

    def variations(self) -> tuple[Variation, ...]:
        return choice_variations(
            "shelf",
            SHELVES,
            TEST_SHELVES,
            [
                "put the money away in the safe on the {shelf} shelf",
                "leave the money on the {shelf} shelf on the safe",
                "place the stack of bank notes on the {shelf} shelf of the safe",
            ],
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._shelf = variation.params["shelf"]
        x, y = rng.uniform(0.64, 0.7), rng.uniform(-0.12, 0.12)
        self._yaw = float(np.arctan2(y, x)) + rng.uniform(-0.2, 0.2)  # roughly facing the robot
        sim.move_fixed("safe", [x, y, 0.0], yaw=self._yaw)
        xy = scatter(rng, 1, 0.0, x=(0.34, 0.44), y=(-0.22, 0.22))[0]
        # RLBench turns the stack within a quarter turn; here within +-45 degrees of pointing at the safe.
        sim.place("money", [xy[0], xy[1], MONEY[2]], yaw=rng.uniform(-np.pi / 4, np.pi / 4))

    def success(self, sim: Sim) -> bool:
        """The stack lies on the named shelf, its centre inside the safe, and is let go of: RLBench's sensor
        and NothingGrasped.

        On the shelf: the stack's centre at least 1 cm behind the safe's front and clear of its sides, its
        bottom within -0.5..+1.5 cm of the shelf's top.
        """
        safe = sim.model.body("safe").id
        local = sim.data.xmat[safe].reshape(3, 3).T @ (sim.pos("money") - sim.data.xpos[safe])
        inside = -SAFE_D + 0.01 < local[0] < SAFE_D and abs(local[1]) < SAFE_W - MONEY[1]
        bottom = local[2] - MONEY[2] - SHELVES[self._shelf]
        return bool(inside and -0.005 < bottom < 0.015 and not sim.held("money"))

    def privileged(self, sim: Sim) -> Privileged:
        return {
            "money_pos": sim.pos("money"),
            "money_yaw": sim.yaw("money"),
            "safe_pos": sim.pos("safe"),
            "safe_yaw": self._yaw,
            "shelf_tops": dict(SHELVES),
            "shelf": self._shelf,
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        a = np.array([np.cos(s["safe_yaw"]), np.sin(s["safe_yaw"]), 0.0])  # into the safe
        along = np.array([np.cos(s["money_yaw"]), np.sin(s["money_yaw"]), 0.0])  # the stack's long axis
        near = -1.0 if along @ a > 0 else 1.0  # the end toward the robot, which goes in last
        end = s["money_pos"] + near * (MONEY[0] - GRIP_IN) * along
        yaw = grasp_yaw(s["money_yaw"], np.pi)  # fingers across the stack's width
        turn = _wrap(s["safe_yaw"] - _angle(-near * along))  # turns the stack to point into the safe
        shelf = s["shelf_tops"][s["shelf"]]
        carry = shelf + 0.025 + GRIP_Z  # the stack's bottom 2.5 cm above the shelf
        yield from pick(np.array([end[0], end[1], GRIP_Z]), yaw, lift_to=carry + 0.03)
        front = s["safe_pos"] - SAFE_D * a
        outside = front - (2 * MONEY[0] - GRIP_IN + 0.04) * a  # the stack's far end 4 cm in front of the safe
        inside = front - HAND_CLEAR * a
        yield Waypoint(np.array([outside[0], outside[1], carry]), yaw + turn, CLOSE)
        yield Waypoint(np.array([inside[0], inside[1], carry]), yaw + turn, CLOSE, speed=0.15)
        down = np.array([inside[0], inside[1], shelf + GRIP_Z + 0.004])
        yield Waypoint(down, yaw + turn, CLOSE, speed=0.1)
        yield Waypoint(down, yaw + turn, OPEN, dwell=GRIP_STEPS)
        yield Waypoint(down - 0.06 * a + [0.0, 0.0, 0.06], yaw + turn, OPEN, speed=0.2)

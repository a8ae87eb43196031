"""turn_tap: turn the left or right tap handle a quarter turn, clockwise or anticlockwise (seen from
above). Held out: the right tap clockwise (a new combination of a seen tap and a seen direction).

Each handle is a lever on a vertical hinge; the expert pushes the lever with closed fingers along an
arc about the hinge.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, Privileged, Script, Task, Waypoint
from polyact.envs.rlbench_like.variations import Variation, enumerate_variations

TAPS = {"left": 0.1, "right": -0.1}  # y of each handle on the tap's base (the robot's left is +y)
DIRECTIONS = {"anticlockwise": 1.0, "clockwise": -1.0}
HELD_OUT = (("right", "clockwise"),)
LEVER = 0.08  # lever length from the hinge
HUB_Z = 0.07
TURNED = 1.57  # rad: success threshold, a quarter turn (RLBench's JointCondition)
LIMIT = 2.4  # rad: the handle's joint range either way, room past TURNED
SWEEP = 1.95  # rad: where the fingers' arc ends, past the lever's start angle
PUSH_R = 0.055  # radius at which the fingers push the lever
CHROME = (0.75, 0.77, 0.8, 1.0)


class TurnTap(Task):
    name = "turn_tap"

    def build(self, spec: mujoco.MjSpec) -> None:
        tap = props.body(spec.worldbody, "tap")
        props.geom(tap, props.BOX, (0.05, 0.16, 0.02), props.DARK, pos=(0, 0, 0.02))
        props.geom(tap, props.CYLINDER, (0.018, 0.07), CHROME, pos=(0.02, 0, 0.09))
        props.geom(tap, props.BOX, (0.05, 0.012, 0.012), CHROME, pos=(-0.02, 0, 0.15))
        for side, y in TAPS.items():
            handle = props.body(tap, f"{side}_handle", pos=(0, y, HUB_Z))
            handle.add_joint(
                name=f"{side}_tap",
                type=mujoco.mjtJoint.mjJNT_HINGE,
                axis=[0, 0, 1],
                range=[-LIMIT, LIMIT],
                damping=0.3,
                frictionloss=0.05,
                armature=0.002,
            )
            props.geom(handle, props.CYLINDER, (0.016, 0.015), CHROME, pos=(0, 0, -0.012), mass=0.05)
            spec.add_exclude(bodyname1="tap", bodyname2=f"{side}_handle")
            props.geom(
                handle, props.BOX, (LEVER / 2, 0.008, 0.008), (0.9, 0.9, 0.92, 1), pos=(-LEVER / 2, 0, 0), mass=0.03
            )

    def variations(self) -> tuple[Variation, ...]:
        return enumerate_variations(
            [
                (
                    "test" if (side, d) in HELD_OUT else "train",
                    {"tap": side, "direction": d},
                    [f"turn the {side} tap {d}", f"rotate the {side} tap handle {d}", f"turn the {side} handle {d}"],
                )
                for side in TAPS
                for d in DIRECTIONS
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._side, self._sign = variation.params["tap"], DIRECTIONS[variation.params["direction"]]
        self._yaw = rng.uniform(-0.3, 0.3)
        sim.move_fixed("tap", [rng.uniform(0.56, 0.62), rng.uniform(-0.12, 0.12), 0.0], yaw=self._yaw)

    def success(self, sim: Sim) -> bool:
        """The named handle turned more than TURNED (1.57 rad) in the named direction.

        RLBench `rlbench/tasks/turn_tap.py:27-31` (MohitShridhar/RLBench peract branch):
        `JointCondition(Joint('left_joint' | 'right_joint'), 1.57)`, i.e. |change| > 1.57 rad from the
        episode's start in either direction. Same threshold here; stricter on direction: our variations
        name a direction (clockwise/anticlockwise, a held-out combination), so only a turn that way counts.
        The handles start at 0 each episode, like RLBench's reference taken in `init_episode`.
        """
        return self._sign * sim.joint(f"{self._side}_tap") > TURNED

    def privileged(self, sim: Sim) -> Privileged:
        return {
            "hinge_pos": sim.pos(f"{self._side}_handle"),
            "angle": sim.joint(f"{self._side}_tap"),
            "tap_yaw": self._yaw,
            "sign": self._sign,
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        hinge, sign = s["hinge_pos"], s["sign"]
        lever_dir = s["tap_yaw"] + np.pi + s["angle"]  # the lever points toward the robot (local -x)
        behind = 0.5  # rad behind the lever, so the closed fingers start clear of it

        def at(angle: float, z: float) -> np.ndarray:
            return hinge + [PUSH_R * np.cos(angle), PUSH_R * np.sin(angle), z - hinge[2]]

        yaw = s["tap_yaw"] + np.pi / 2  # the hand's long side across the tap, clear of the spout
        start = lever_dir - sign * behind
        yield Waypoint(at(start, HUB_Z + 0.1), yaw, CLOSE)
        yield Waypoint(at(start, HUB_Z + 0.01), yaw, CLOSE, speed=0.2)
        arc, moves = behind + SWEEP, 6
        for k in range(1, moves + 1):  # the arc, as short moves
            yield Waypoint(at(start + sign * k * arc / moves, HUB_Z + 0.01), yaw, CLOSE, speed=0.15, dwell=0)
        end = start + sign * arc
        yield Waypoint(at(end, HUB_Z + 0.1), yaw, CLOSE)

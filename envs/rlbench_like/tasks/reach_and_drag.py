"""reach_and_drag: pick up the stick and drag the cube with it onto the square of the named colour.

The cube stands on the far side of the table, the target square nearer the robot and three distractor
squares of other colours elsewhere. The stick has a dark handle at one end; the expert grasps it there,
turns the hand so that the stick lies across the drag, lowers it behind the cube and pulls.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, Privileged, Script, Task, Waypoint
from polyact.envs.rlbench_like.tasks.common import SAFE_Z, grasp_yaw, pick, scatter
from polyact.envs.rlbench_like.variations import COLOURS, Variation, colour_variations, distractor_pool

CUBE_HALF = 0.02
STICK_HALF = (0.14, 0.01, 0.01)  # along the stick, across it, height
HANDLE_LEN = 0.07  # the dark grip at the stick's -x end
GRIP_X = -0.105  # stick-frame x of the grasp, on the handle
CONTACT_X = 0.035  # stick-frame x of the point placed behind the cube (0.14 m out from the grasp)
PAD_HALF = 0.05
N_DISTRACTORS = 3
TOLERANCE = 0.035  # success: cube centre this close (xy) to the target square's centre
BEHIND = 0.05  # the stick's axis this far behind the cube's centre when lowered (clears a turned cube)
CLEARANCE = 0.004  # stick's underside above the table while dragging
WOOD = (0.72, 0.55, 0.35, 1.0)


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _turn(v: np.ndarray, angle: float) -> np.ndarray:
    """v (3,) turned by `angle` about the vertical."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


class ReachAndDrag(Task):
    """RLBench's `rlbench/tasks/reach_and_drag.py` (MohitShridhar/RLBench peract branch, PerAct's tasks).

    RLBench: 20 variations, one per colour of `rlbench/const.py` `colors`, for the target square; three
    distractor squares take the colours 5, 6 and 7 places on in that list (`:26-33`). Here: the suite's nine
    colours, three of them held out (variations.py), distractor colours drawn at random from the rest. The
    stick is a straight box with a dark handle (RLBench's stick, cube and squares are in its `.ttm`); the
    layout is random within the reach of our arm. As in RLBench, success does not check that the stick
    did the dragging.
    """

    name = "reach_and_drag"

    def build(self, spec: mujoco.MjSpec) -> None:
        stick = props.body(spec.worldbody, "stick", free=True)
        (hx, hy, hz), grip_half = STICK_HALF, HANDLE_LEN / 2
        props.geom(stick, props.BOX, (grip_half, hy, hz), props.DARK, pos=(-hx + grip_half, 0, 0), mass=0.015)
        props.geom(stick, props.BOX, (hx - grip_half, hy, hz), WOOD, pos=(grip_half, 0, 0), mass=0.035)
        stick.add_site(name="stick_grip", pos=[GRIP_X, 0, 0])
        stick.add_site(name="stick_contact", pos=[CONTACT_X, 0, 0])
        props.geom(props.body(spec.worldbody, "cube", free=True), props.BOX, (CUBE_HALF,) * 3, props.GREY, mass=0.04)
        for name in ("target", *(f"distractor{i}" for i in range(N_DISTRACTORS))):
            square = props.body(spec.worldbody, name)
            props.geom(square, props.BOX, (PAD_HALF, PAD_HALF, 0.001), pos=(0, 0, 0.001), collide=False)

    def variations(self) -> tuple[Variation, ...]:
        return colour_variations(
            [
                "use the stick to drag the cube onto the {colour} target",
                "pick up the stick and pull the cube onto the {colour} square with it",
                "grasp the stick by its handle and drag the block to the {colour} target",
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        colour = variation.params["colour"]
        pool = distractor_pool(variation, [colour])
        cube = np.array([rng.uniform(0.56, 0.62), rng.uniform(-0.12, 0.12)])
        heading = np.pi + rng.uniform(-0.5, 0.5)  # the drag comes toward the robot
        target = cube + rng.uniform(0.14, 0.2) * np.array([np.cos(heading), np.sin(heading)])
        path = [(cube, 0.1), ((cube + target) / 2, 0.1), (target, 0.14)]
        stick = scatter(rng, 1, 0.0, avoid=[(cube, STICK_HALF[0] + 0.05), (target, 0.12)])[0]
        squares = scatter(rng, N_DISTRACTORS, 2.2 * PAD_HALF, avoid=path + [(stick, STICK_HALF[0] + 0.03)])
        sim.place("cube", [cube[0], cube[1], CUBE_HALF], yaw=rng.uniform(-np.pi, np.pi))
        sim.place("stick", [stick[0], stick[1], STICK_HALF[2]], yaw=rng.uniform(-np.pi, np.pi))
        sim.move_fixed("target", [target[0], target[1], 0.0], yaw=heading)
        sim.paint("target", COLOURS[colour])
        for i, (xy, c) in enumerate(zip(squares, rng.choice(pool, N_DISTRACTORS, replace=False), strict=True)):
            sim.move_fixed(f"distractor{i}", [xy[0], xy[1], 0.0], yaw=rng.uniform(-np.pi, np.pi))
            sim.paint(f"distractor{i}", COLOURS[str(c)])

    def success(self, sim: Sim) -> bool:
        """The cube rests on the target square: its centre within TOLERANCE of the square's, on the table.

        RLBench `rlbench/tasks/reach_and_drag.py:21-22`: `DetectedCondition(cube, ProximitySensor('success0'))`,
        a sensor on the target square whose volume is in the `.ttm`; `NothingGrasped` is imported but not
        registered, so the stick may still be held, here too. Our sensor is geometric: the cube's centre
        over the square's middle, and the cube down on the table rather than lifted above the square.
        """
        cube, target = sim.pos("cube"), sim.pos("target")
        return bool(np.linalg.norm(cube[:2] - target[:2]) < TOLERANCE and cube[2] < CUBE_HALF + 0.01)

    def privileged(self, sim: Sim) -> Privileged:
        return {
            "grip_pos": sim.site("stick_grip"),
            "contact_pos": sim.site("stick_contact"),
            "stick_yaw": sim.yaw("stick"),
            "cube_pos": sim.pos("cube"),
            "target_pos": sim.pos("target"),
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        yaw = grasp_yaw(s["stick_yaw"], np.pi)  # fingers across the handle
        yield from pick(s["grip_pos"] + [0.0, 0.0, 0.003], yaw, lift_to=SAFE_Z)
        s, tcp = p()["task"], p()["target_pos"]
        cube, target = s["cube_pos"], s["target_pos"]
        d = (target - cube) * [1.0, 1.0, 0.0]
        d /= np.linalg.norm(d)
        # Turn the hand so the stick points across the drag, whichever way needs the smaller wrist yaw.
        across = np.arctan2(d[1], d[0]) + np.array([np.pi / 2, -np.pi / 2])
        turns = [_wrap(a - s["stick_yaw"]) for a in across]
        turn = min(turns, key=lambda t: abs(_wrap(yaw + t)))
        new_yaw = _wrap(yaw + turn)
        offset = _turn(s["contact_pos"] - tcp, turn)  # the contact point from the tcp, after the turn
        z = STICK_HALF[2] + CLEARANCE - offset[2]
        start = cube - BEHIND * d - offset
        end = target - (CUBE_HALF + STICK_HALF[1]) * d - offset
        yield Waypoint(np.array([start[0], start[1], SAFE_Z]), new_yaw, CLOSE)
        yield Waypoint(np.array([start[0], start[1], z]), new_yaw, CLOSE, speed=0.2)
        yield Waypoint(np.array([end[0], end[1], z]), new_yaw, CLOSE, speed=0.12)
        # The stick yields a little in the compliant grasp under the cube's friction (about 0.1 rad), so the
        # first stroke ends a centimetre or two short: a second one drags on by what is left, measured on the cube.
        s = p()["task"]
        end = end + max(float(np.dot(s["target_pos"] - s["cube_pos"], d)), 0.0) * d
        yield Waypoint(np.array([end[0], end[1], z]), new_yaw, CLOSE, speed=0.1)
        back = end - 0.02 * d
        yield Waypoint(np.array([back[0], back[1], z + 0.1]), new_yaw, CLOSE, speed=0.2)

"""slide_block_to_color_target: push the block onto the target square of the named colour.

Four coloured squares lie around the block, one in each direction; the expert pushes with closed
fingers, in two strokes so that the second corrects whatever the block turned or drifted in the first.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, Privileged, Script, Task, Waypoint
from polyact.envs.rlbench_like.tasks.common import grasp_yaw
from polyact.envs.rlbench_like.variations import (
    COLOURS,
    Variation,
    colour_variations,
    distractor_pool,
)

HALF = 0.025  # block half-size
PAD_HALF = 0.045
PAD_DIST = 0.15  # from the block's start to each square's centre
TOLERANCE = 0.035  # success: block centre this close (xy) to the target square's centre
PUSH_Z = 0.02  # tcp height while pushing (fingertips 1 cm above the table)
FINGER_HALF = 0.011  # half the fingers' thickness along the push
_DIRECTIONS = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])


class SlideBlockToColorTarget(Task):
    name = "slide_block_to_color_target"

    def build(self, spec: mujoco.MjSpec) -> None:
        props.geom(
            props.body(spec.worldbody, "block", free=True), props.BOX, (HALF,) * 3, (0.2, 0.2, 0.22, 1), mass=0.1
        )
        for i in range(4):
            pad = props.body(spec.worldbody, f"pad{i}")
            props.geom(pad, props.BOX, (PAD_HALF, PAD_HALF, 0.001), pos=(0, 0, 0.001), collide=False)

    def variations(self) -> tuple[Variation, ...]:
        return colour_variations(
            [
                "slide the block to the {colour} target",
                "push the block onto the {colour} square",
                "slide the cube until it sits on the {colour} patch",
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        colour = variation.params["colour"]
        pool = distractor_pool(variation, [colour])
        colours = [colour, *rng.choice(pool, 3, replace=False)]
        start = np.array([rng.uniform(0.46, 0.54), rng.uniform(-0.1, 0.1)])
        turn = rng.uniform(-0.3, 0.3)
        rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        dirs = _DIRECTIONS[rng.permutation(4)] @ rot.T
        for i, (d, c) in enumerate(zip(dirs, colours, strict=True)):
            centre = start + PAD_DIST * d
            sim.move_fixed(f"pad{i}", [centre[0], centre[1], 0.0], yaw=turn)
            sim.paint(f"pad{i}", COLOURS[str(c)])
        sim.place("block", [start[0], start[1], HALF], yaw=turn + rng.uniform(-0.2, 0.2))

    def success(self, sim: Sim) -> bool:
        return bool(np.linalg.norm(sim.pos("block")[:2] - sim.pos("pad0")[:2]) < TOLERANCE)

    def privileged(self, sim: Sim) -> Privileged:
        return {"block_pos": sim.pos("block"), "block_yaw": sim.yaw("block"), "target_pos": sim.pos("pad0")}

    def script(self, p: Callable[[], Privileged]) -> Script:
        for fraction in (0.6, 1.0):
            s = p()["task"]
            block, goal = s["block_pos"][:2], s["target_pos"][:2]
            d = (goal - block) / np.linalg.norm(goal - block)
            yaw = grasp_yaw(float(np.arctan2(d[1], d[0])), np.pi)  # fingers across the push
            back = HALF + FINGER_HALF + 0.03
            start = block - back * d
            end = block + fraction * (goal - block) - (HALF + FINGER_HALF) * d
            yield Waypoint(np.array([*start, 0.12]), yaw, CLOSE)
            yield Waypoint(np.array([*start, PUSH_Z]), yaw, CLOSE, speed=0.25)
            yield Waypoint(np.array([*end, PUSH_Z]), yaw, CLOSE, speed=0.15)
            yield Waypoint(np.array([*(end - 0.03 * d), PUSH_Z]), yaw, CLOSE, speed=0.2)
            yield Waypoint(np.array([*(end - 0.03 * d), 0.12]), yaw, CLOSE)

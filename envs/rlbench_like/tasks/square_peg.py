"""insert_onto_square_peg: put the square ring onto the peg of the named colour (three pegs)."""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, OPEN, Privileged, Script, Task, Waypoint
from polyact.envs.rlbench_like.tasks.common import GRIP_STEPS, grasp_yaw, pick
from polyact.envs.rlbench_like.variations import (
    COLOURS,
    Variation,
    colour_variations,
    distractor_pool,
)

PEG_HALF, PEG_TOP = 0.015, 0.11
RING_OUTER, RING_INNER, RING_HALF_H = 0.042, 0.026, 0.01
BAR = (RING_OUTER + RING_INNER) / 2  # distance from the ring's centre to the middle of a side bar
PEG_SPACING = 0.11
TOLERANCE = 0.013  # success: ring centre this close (xy) to the peg's axis, and below its top


class InsertOntoSquarePeg(Task):
    name = "insert_onto_square_peg"

    def build(self, spec: mujoco.MjSpec) -> None:
        base = props.body(spec.worldbody, "peg_base")
        props.geom(base, props.BOX, (0.04, 0.17, 0.01), props.DARK, pos=(0, 0, 0.01))
        for i in range(3):
            props.geom(
                base,
                props.BOX,
                (PEG_HALF, PEG_HALF, (PEG_TOP - 0.02) / 2),
                name=f"peg{i}",
                pos=(0, (i - 1) * PEG_SPACING, 0.02 + (PEG_TOP - 0.02) / 2),
            )
        ring = props.body(spec.worldbody, "ring", free=True)
        props.frame_of_boxes(ring, (RING_OUTER,) * 2, (RING_INNER,) * 2, RING_HALF_H, (0.95, 0.6, 0.1, 1), mass=0.04)

    def variations(self) -> tuple[Variation, ...]:
        return colour_variations(
            [
                "put the ring on the {colour} peg",
                "insert the square ring onto the {colour} spoke",
                "slide the ring over the {colour} peg",
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        colour = variation.params["colour"]
        pool = distractor_pool(variation, [colour])
        colours = [colour, *rng.choice(pool, 2, replace=False)]
        slots = rng.permutation(3)
        self._target = int(slots[0])
        for slot, c in zip(slots, colours, strict=True):
            sim.paint("peg_base", COLOURS[str(c)], geoms=[sim.model.geom(f"peg{slot}").id])
        base_yaw = rng.uniform(-0.3, 0.3)
        sim.move_fixed("peg_base", [rng.uniform(0.6, 0.66), rng.uniform(-0.08, 0.08), 0.0], yaw=base_yaw)
        sim.place(
            "ring", [rng.uniform(0.36, 0.44), rng.uniform(-0.25, 0.25), RING_HALF_H], yaw=rng.uniform(-np.pi, np.pi)
        )

    def _peg(self, sim: Sim) -> np.ndarray:
        return sim.data.geom_xpos[sim.model.geom(f"peg{self._target}").id].copy()

    def success(self, sim: Sim) -> bool:
        ring, peg = sim.pos("ring"), self._peg(sim)
        return bool(np.linalg.norm(ring[:2] - peg[:2]) < TOLERANCE and ring[2] < PEG_TOP - 0.02)

    def privileged(self, sim: Sim) -> Privileged:
        peg = self._peg(sim)
        return {
            "ring_pos": sim.pos("ring"),
            "ring_yaw": sim.yaw("ring"),
            "peg_top": np.array([peg[0], peg[1], PEG_TOP]),
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        yaw = grasp_yaw(s["ring_yaw"])
        bar = s["ring_pos"] + BAR * np.array([-np.sin(yaw), np.cos(yaw), 0.0])  # the side bar across the fingers
        grasp = np.array([bar[0], bar[1], RING_HALF_H + 0.003])
        yield from pick(grasp, yaw, lift_to=0.22)
        s = p()["task"]
        offset = s["ring_pos"] - p()["target_pos"]  # the ring's centre relative to the commanded tcp
        over = s["peg_top"] - offset
        yield Waypoint(over + [0, 0, 0.04], yaw, CLOSE)
        yield Waypoint(over - [0, 0, 0.035], yaw, CLOSE, speed=0.1)
        yield Waypoint(over - [0, 0, 0.035], yaw, OPEN, dwell=GRIP_STEPS)
        yield Waypoint(over + [0, 0, 0.06], yaw, OPEN)

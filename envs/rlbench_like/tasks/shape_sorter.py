"""place_shape_in_shape_sorter: drop the named shape into the shape sorter through one of its holes.

The sorter is a hollow box whose lid has four square holes (built of convex boxes); four shapes in
random colours lie on the table, so only the shape's form identifies it. The hexagon is held out.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Privileged, Script, Task
from polyact.envs.rlbench_like.tasks.common import grasp_yaw, pick, place, scatter
from polyact.envs.rlbench_like.variations import COLOURS, TRAIN_COLOURS, Variation, enumerate_variations

SORTER = (0.06, 0.2, 0.1)  # half depth, half width, height
HOLE = 0.032  # half size of each square hole
HOLE_Y = (-0.15, -0.05, 0.05, 0.15)
SHAPE_HALF = 0.02  # half height of every shape
# shape: (grasp symmetry, split as a target)
SHAPES = {
    "cube": (np.pi / 2, "train"),
    "cylinder": (np.pi / 2, "train"),
    "cross": (np.pi / 2, "train"),
    "hexagon": (np.pi / 3, "test"),
}
SORTER_RGBA = (0.25, 0.45, 0.85, 1.0)


class PlaceShapeInShapeSorter(Task):
    name = "place_shape_in_shape_sorter"

    def build(self, spec: mujoco.MjSpec) -> None:
        depth, width, height = SORTER
        sorter = props.body(spec.worldbody, "sorter")
        for sign in (-1, 1):
            props.geom(
                sorter, props.BOX, (depth, 0.008, height / 2), SORTER_RGBA, pos=(0, sign * (width - 0.008), height / 2)
            )
            props.geom(
                sorter, props.BOX, (0.008, width, height / 2), SORTER_RGBA, pos=(sign * (depth - 0.008), 0, height / 2)
            )
        lid_z = height - 0.005
        edges = [-width, *[y + s * HOLE for y in HOLE_Y for s in (-1, 1)], width]
        for lo, hi in zip(edges[::2], edges[1::2], strict=True):  # strips between the holes
            props.geom(sorter, props.BOX, (depth, (hi - lo) / 2, 0.005), SORTER_RGBA, pos=(0, (lo + hi) / 2, lid_z))
        for y in HOLE_Y:  # the lid in front of and behind each hole
            for sign in (-1, 1):
                props.geom(
                    sorter,
                    props.BOX,
                    ((depth - HOLE) / 2, HOLE, 0.005),
                    SORTER_RGBA,
                    pos=(sign * (HOLE + (depth - HOLE) / 2), y, lid_z),
                )
        props.prism_mesh(spec, "hexagon", 0.022, SHAPE_HALF, 6)
        kinds = {
            "cube": [(props.BOX, (0.019, 0.019, SHAPE_HALF), (0, 0, 0))],
            "cylinder": [(props.CYLINDER, (0.02, SHAPE_HALF), (0, 0, 0))],
            "cross": [
                (props.BOX, (0.025, 0.009, SHAPE_HALF), (0, 0, 0)),
                (props.BOX, (0.009, 0.025, SHAPE_HALF), (0, 0, 0)),
            ],
        }
        for name in SHAPES:
            b = props.body(spec.worldbody, name, free=True)
            if name == "hexagon":
                props.geom(b, props.MESH, (), meshname="hexagon", mass=0.04)
            for kind, size, pos in kinds.get(name, []):
                props.geom(b, kind, size, pos=pos, mass=0.04)

    def variations(self) -> tuple[Variation, ...]:
        return enumerate_variations(
            [
                (
                    split,
                    {"shape": s},
                    [f"put the {s} in the shape sorter", f"drop the {s} into the sorter", f"place the {s} in its hole"],
                )
                for s, (_, split) in SHAPES.items()
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._shape = variation.params["shape"]
        x, y = rng.uniform(0.6, 0.64), rng.uniform(-0.08, 0.08)
        self._yaw = rng.uniform(-0.3, 0.3)
        sim.move_fixed("sorter", [x, y, 0.0], yaw=self._yaw)
        self._hole = int(rng.integers(len(HOLE_Y)))
        colours = rng.choice(TRAIN_COLOURS, len(SHAPES), replace=False)
        spots = scatter(rng, len(SHAPES), 0.09, x=(0.33, 0.46))
        for name, xy, c in zip(SHAPES, spots, colours, strict=True):
            sim.place(name, [xy[0], xy[1], SHAPE_HALF], yaw=rng.uniform(-np.pi, np.pi))
            sim.paint(name, COLOURS[str(c)])

    def _local(self, sim: Sim, point: np.ndarray) -> np.ndarray:
        sorter = sim.model.body("sorter").id
        return sim.data.xmat[sorter].reshape(3, 3).T @ (point - sim.data.xpos[sorter])

    def success(self, sim: Sim) -> bool:
        local = self._local(sim, sim.pos(self._shape))
        depth, width, height = SORTER
        return bool(abs(local[0]) < depth - 0.01 and abs(local[1]) < width - 0.01 and local[2] < height - 0.03)

    def privileged(self, sim: Sim) -> Privileged:
        sorter = sim.model.body("sorter").id
        hole = sim.data.xpos[sorter] + sim.data.xmat[sorter].reshape(3, 3) @ np.array([0, HOLE_Y[self._hole], 0])
        return {"shape_pos": sim.pos(self._shape), "shape_yaw": sim.yaw(self._shape), "hole_pos": hole}

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        yaw = grasp_yaw(s["shape_yaw"] + np.pi / 2, SHAPES[self._shape][0])  # fingers across flat faces
        yield from pick(s["shape_pos"] + [0, 0, 0.006], yaw, lift_to=0.22)
        drop = s["hole_pos"] + [0, 0, SORTER[2] + SHAPE_HALF + 0.006 - 0.012]  # shape 1.2 cm into the hole
        yield from place(drop, yaw)

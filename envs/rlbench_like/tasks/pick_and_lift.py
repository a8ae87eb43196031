"""pick_and_lift (held-out task): pick up the block of the named colour and lift it up high."""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Privileged, Script, Task
from polyact.envs.rlbench_like.tasks.common import grasp_yaw, pick, scatter
from polyact.envs.rlbench_like.variations import (
    COLOURS,
    Variation,
    colour_variations,
    distractor_pool,
)

HALF = 0.0225  # block half-size
N_BLOCKS = 3  # the target and two distractors
LIFT_Z = 0.15  # success: the block's centre this high above the table


class PickAndLift(Task):
    name = "pick_and_lift"

    def build(self, spec: mujoco.MjSpec) -> None:
        for i in range(N_BLOCKS):
            b = props.body(spec.worldbody, f"block{i}", free=True)
            props.geom(b, props.BOX, (HALF, HALF, HALF), mass=0.08)

    def variations(self) -> tuple[Variation, ...]:
        return colour_variations(
            [
                "pick up the {colour} block and lift it",
                "lift the {colour} block up",
                "grasp the {colour} cube and raise it",
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        colour = variation.params["colour"]
        pool = distractor_pool(variation, [colour])
        others = rng.choice(pool, N_BLOCKS - 1, replace=False)
        for i, (xy, c) in enumerate(zip(scatter(rng, N_BLOCKS, 0.1), [colour, *others], strict=True)):
            sim.place(f"block{i}", [xy[0], xy[1], HALF], yaw=rng.uniform(-np.pi, np.pi))
            sim.paint(f"block{i}", COLOURS[str(c)])

    def success(self, sim: Sim) -> bool:
        return bool(sim.pos("block0")[2] > LIFT_Z)

    def privileged(self, sim: Sim) -> Privileged:
        return {"block_pos": [sim.pos(f"block{i}") for i in range(N_BLOCKS)], "block_yaw": sim.yaw("block0")}

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        target = s["block_pos"][0]
        yield from pick(target + [0.0, 0.0, 0.0], grasp_yaw(s["block_yaw"]), lift_to=0.25)

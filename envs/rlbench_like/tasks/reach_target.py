"""reach_target (held-out task): touch the floating sphere of the named colour; two distractors."""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, Privileged, Script, Task, Waypoint
from polyact.envs.rlbench_like.tasks.common import scatter
from polyact.envs.rlbench_like.variations import COLOURS, Variation, colour_variations, distractor_pool

RADIUS = 0.025
N_SPHERES = 3
TOLERANCE = 0.03  # success: the tcp this close to the target's centre


class ReachTarget(Task):
    name = "reach_target"

    def build(self, spec: mujoco.MjSpec) -> None:
        for i in range(N_SPHERES):  # markers, not obstacles: the arm may pass through distractors
            props.geom(props.body(spec.worldbody, f"sphere{i}"), props.SPHERE, (RADIUS,), collide=False)

    def variations(self) -> tuple[Variation, ...]:
        return colour_variations(
            ["reach the {colour} target", "touch the {colour} ball", "move to the {colour} sphere"]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        colour = variation.params["colour"]
        pool = distractor_pool(variation, [colour])
        others = rng.choice(pool, N_SPHERES - 1, replace=False)
        for i, (xy, c) in enumerate(zip(scatter(rng, N_SPHERES, 0.12), [colour, *others], strict=True)):
            sim.move_fixed(f"sphere{i}", [xy[0], xy[1], rng.uniform(0.08, 0.35)])
            sim.paint(f"sphere{i}", COLOURS[str(c)])

    def success(self, sim: Sim) -> bool:
        return bool(np.linalg.norm(sim.site("tcp") - sim.pos("sphere0")) < TOLERANCE)

    def privileged(self, sim: Sim) -> Privileged:
        return {"sphere_pos": [sim.pos(f"sphere{i}") for i in range(N_SPHERES)]}

    def script(self, p: Callable[[], Privileged]) -> Script:
        yield Waypoint(p()["task"]["sphere_pos"][0], 0.0, CLOSE)

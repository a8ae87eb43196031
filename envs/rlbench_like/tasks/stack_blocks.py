"""stack_blocks: stack N blocks of the named colour on the grey square; distractors of other colours.

Variations: colour x count. Held out: unseen colours, and a count of four (train counts are two and
three). Exactly N blocks of the named colour are on the table, so the count is visible as well as said.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Privileged, Script, Task
from polyact.envs.rlbench_like.tasks.common import grasp_yaw, pick, place, scatter
from polyact.envs.rlbench_like.variations import (
    COLOURS,
    TEST_COLOURS,
    TRAIN_COLOURS,
    Variation,
    distractor_pool,
    enumerate_variations,
)

HALF = 0.0225
MAX_TARGETS = 4
N_DISTRACTORS = 2
TRAIN_COUNTS, TEST_COUNTS = (2, 3), (4,)
PLATFORM_HALF = 0.04
COLUMN_TOL = 0.03  # success: a block's centre this close (xy) to the platform's centre
_WORDS = {2: "two", 3: "three", 4: "four"}


class StackBlocks(Task):
    name = "stack_blocks"

    def build(self, spec: mujoco.MjSpec) -> None:
        platform = props.body(spec.worldbody, "platform")
        props.geom(
            platform, props.BOX, (PLATFORM_HALF, PLATFORM_HALF, 0.001), props.DARK, pos=(0, 0, 0.001), collide=False
        )
        for i in range(MAX_TARGETS + N_DISTRACTORS):
            props.geom(props.body(spec.worldbody, f"block{i}", free=True), props.BOX, (HALF,) * 3, mass=0.08)

    def variations(self) -> tuple[Variation, ...]:
        entries = []
        for c in TRAIN_COLOURS + TEST_COLOURS:
            for n in TRAIN_COUNTS + TEST_COUNTS:
                split = "train" if c in TRAIN_COLOURS and n in TRAIN_COUNTS else "test"
                w = _WORDS[n]
                entries.append(
                    (
                        split,
                        {"colour": c, "count": n},
                        [
                            f"stack {w} {c} blocks",
                            f"place {w} of the {c} cubes on top of each other on the grey square",
                            f"build a tower of {w} {c} blocks",
                        ],
                    )
                )
        return enumerate_variations(entries)

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        colour, n = variation.params["colour"], variation.params["count"]
        self._colour_count = n
        pool = distractor_pool(variation, [colour])
        distractors = rng.choice(pool, N_DISTRACTORS, replace=True)
        platform_xy = scatter(rng, 1, 0.0, x=(0.42, 0.58), y=(-0.2, 0.2))[0]
        sim.move_fixed("platform", [platform_xy[0], platform_xy[1], 0.0])
        spots = scatter(rng, n + N_DISTRACTORS, 0.085, avoid=[(platform_xy, 0.11)])
        colours = [colour] * n + list(distractors)
        active = list(range(n)) + list(range(MAX_TARGETS, MAX_TARGETS + N_DISTRACTORS))
        for i in range(MAX_TARGETS + N_DISTRACTORS):
            if i not in active:
                sim.hide(f"block{i}")
        for i, xy, c in zip(active, spots, colours, strict=True):
            sim.place(f"block{i}", [xy[0], xy[1], HALF], yaw=rng.uniform(-np.pi, np.pi))
            sim.paint(f"block{i}", COLOURS[str(c)])

    def _stacked(self, sim: Sim) -> int:
        centre = sim.pos("platform")[:2]
        count = 0
        for i in range(self._colour_count):
            body = f"block{i}"
            if np.linalg.norm(sim.pos(body)[:2] - centre) < COLUMN_TOL and not sim.held(body):
                count += 1
        return count

    def success(self, sim: Sim) -> bool:
        return self._stacked(sim) >= self._colour_count

    def privileged(self, sim: Sim) -> Privileged:
        n = self._colour_count
        return {
            "platform_pos": sim.pos("platform"),
            "block_pos": [sim.pos(f"block{i}") for i in range(n)],
            "block_yaw": [sim.yaw(f"block{i}") for i in range(n)],
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        n = self._colour_count
        for level in range(n):
            s = p()["task"]
            block = s["block_pos"][level]
            yaw = grasp_yaw(s["block_yaw"][level])
            yield from pick(block, yaw, lift_to=0.08 + 2 * HALF * (level + 1))
            top = s["platform_pos"] + [0.0, 0.0, HALF + 2 * HALF * level + 0.006]
            yield from place(top, yaw, retreat_to=0.08 + 2 * HALF * (level + 2))

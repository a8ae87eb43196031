"""push_buttons: push the buttons of the named colours in the named order (one to three of them).

Success needs the first presses of the episode to be exactly the named sequence: pressing another
button before the sequence is complete fails the episode. That is stricter than RLBench, whose ordered
`ConditionSet` ignores presses of other buttons (rlbench/tasks/push_buttons.py). Presses are tracked after
every control step (a press shorter than one step would be missed; the expert holds each for two).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import permutations

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, Privileged, Script, Task, Waypoint
from polyact.envs.rlbench_like.tasks.common import scatter
from polyact.envs.rlbench_like.variations import (
    COLOURS,
    TEST_COLOURS,
    TRAIN_COLOURS,
    Variation,
    distractor_pool,
    enumerate_variations,
)

N_BUTTONS = 3
BASE_HALF_HEIGHT = 0.01
CAP_HALF_HEIGHT = 0.008
TRAVEL = 0.012
PRESSED = -0.007  # joint position that counts as a press
_ORDINALS = ("first", "then", "and then")


def _sequence_text(seq: tuple[str, ...]) -> list[str]:
    if len(seq) == 1:
        return [f"push the {seq[0]} button", f"press the {seq[0]} button", f"press down the {seq[0]} button"]
    names = [f"the {c} button" for c in seq]
    chained = ", then ".join(names)
    return [
        f"push {chained}",
        "press " + ", ".join(f"{o} {n}" for o, n in zip(_ORDINALS, names, strict=False)),
        f"push the buttons in this order: {', '.join(seq)}",
    ]


class PushButtons(Task):
    name = "push_buttons"

    def build(self, spec: mujoco.MjSpec) -> None:
        for i in range(N_BUTTONS):
            base = props.body(spec.worldbody, f"button{i}")
            props.geom(base, props.CYLINDER, (0.04, BASE_HALF_HEIGHT), props.DARK, pos=(0, 0, BASE_HALF_HEIGHT))
            cap = props.body(base, f"cap{i}", pos=(0, 0, 2 * BASE_HALF_HEIGHT + CAP_HALF_HEIGHT))
            cap.gravcomp = 1.0
            cap.add_joint(
                name=f"cap{i}_joint",
                type=mujoco.mjtJoint.mjJNT_SLIDE,
                axis=[0, 0, 1],
                range=[-TRAVEL, 0.0],
                stiffness=200.0,
                damping=2.0,
            )
            props.geom(cap, props.CYLINDER, (0.028, CAP_HALF_HEIGHT), mass=0.02)
            spec.add_exclude(bodyname1=f"button{i}", bodyname2=f"cap{i}")

    def variations(self) -> tuple[Variation, ...]:
        entries = []
        for length in (1, 2, 3):
            for seq in permutations(TRAIN_COLOURS + TEST_COLOURS, length):
                split = "test" if any(c in TEST_COLOURS for c in seq) else "train"
                entries.append((split, {"sequence": seq}, _sequence_text(seq)))
        return enumerate_variations(entries)

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._sequence = tuple(variation.params["sequence"])
        pool = distractor_pool(variation, self._sequence)
        colours = list(self._sequence) + list(rng.choice(pool, N_BUTTONS - len(self._sequence), replace=False))
        order = rng.permutation(N_BUTTONS)  # which button carries which colour
        self._colour_of = {}
        for i, xy in enumerate(scatter(rng, N_BUTTONS, 0.13)):
            sim.move_fixed(f"button{i}", [xy[0], xy[1], 0.0])
            colour = str(colours[order[i]])
            sim.paint(f"cap{i}", COLOURS[colour])
            self._colour_of[i] = colour
        self._pressed: list[str] = []

    def after_step(self, sim: Sim) -> None:
        for i in range(N_BUTTONS):
            colour = self._colour_of[i]
            if sim.joint(f"cap{i}_joint") < PRESSED and colour not in self._pressed:
                self._pressed.append(colour)

    def success(self, sim: Sim) -> bool:
        return tuple(self._pressed[: len(self._sequence)]) == self._sequence

    def privileged(self, sim: Sim) -> Privileged:
        by_colour = {self._colour_of[i]: sim.pos(f"cap{i}") for i in range(N_BUTTONS)}
        return {
            "sequence": self._sequence,
            "cap_pos": [by_colour[c] for c in self._sequence],
            "pressed": list(self._pressed),
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        for cap in p()["task"]["cap_pos"]:
            top = cap[2] + CAP_HALF_HEIGHT
            yield Waypoint(np.array([cap[0], cap[1], top + 0.08]), 0.0, CLOSE)
            yield Waypoint(np.array([cap[0], cap[1], top - TRAVEL + 0.003]), 0.0, CLOSE, speed=0.15, dwell=3)
            yield Waypoint(np.array([cap[0], cap[1], top + 0.08]), 0.0, CLOSE, speed=0.3)

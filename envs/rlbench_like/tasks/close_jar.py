"""close_jar: put the lid on the jar of the named colour (a second jar is a distractor).

RLBench screws the lid on; here the lid must sit centred on the jar's rim (no thread is simulated) and
be let go of.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Privileged, Script, Task
from polyact.envs.rlbench_like.tasks.common import pick, place, scatter
from polyact.envs.rlbench_like.variations import COLOURS, Variation, colour_variations, distractor_pool

JAR_R, JAR_HALF = 0.035, 0.04
LID_R, LID_HALF = 0.042, 0.008
KNOB_R, KNOB_HALF = 0.012, 0.015
KNOB_Z = LID_HALF + KNOB_HALF  # knob centre above the lid's centre
GRASP_Z = KNOB_Z + 0.003  # tcp above the lid's centre when holding the knob
TOLERANCE = 0.015  # success: lid centre this close (xy) to the jar's axis
GLASS = (0.78, 0.82, 0.85, 1.0)


class CloseJar(Task):
    name = "close_jar"

    def build(self, spec: mujoco.MjSpec) -> None:
        for i in range(2):
            jar = props.body(spec.worldbody, f"jar{i}")
            props.geom(jar, props.CYLINDER, (JAR_R, JAR_HALF), GLASS, pos=(0, 0, JAR_HALF))
            props.geom(jar, props.CYLINDER, (JAR_R + 0.002, 0.014), name=f"jar{i}_band", pos=(0, 0, JAR_HALF))
        lid = props.body(spec.worldbody, "lid", free=True)
        props.geom(lid, props.CYLINDER, (LID_R, LID_HALF), props.DARK, mass=0.05)
        props.geom(lid, props.CYLINDER, (KNOB_R, KNOB_HALF), props.GREY, pos=(0, 0, KNOB_Z), mass=0.01)

    def variations(self) -> tuple[Variation, ...]:
        return colour_variations(
            ["close the {colour} jar", "put the lid on the {colour} jar", "screw the lid onto the {colour} jar"]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        colour = variation.params["colour"]
        pool = distractor_pool(variation, [colour])
        jar0, jar1, lid = scatter(rng, 3, 0.15)
        for i, (xy, c) in enumerate(((jar0, colour), (jar1, str(rng.choice(pool))))):
            sim.move_fixed(f"jar{i}", [xy[0], xy[1], 0.0])
            band = sim.model.geom(f"jar{i}_band").id
            sim.paint(f"jar{i}", COLOURS[c], geoms=[band])
        sim.place("lid", [lid[0], lid[1], LID_HALF], yaw=rng.uniform(-np.pi, np.pi))

    def success(self, sim: Sim) -> bool:
        """The lid rests centred on the target jar's rim and no finger touches it.

        RLBench `rlbench/tasks/close_jar.py:20`, `:42-43` (MohitShridhar/RLBench peract branch):
        `[NothingGrasped(gripper), DetectedCondition(jar_lid0, ProximitySensor('success'))]`, the sensor
        0.05 m above the target jar (`:26-28`). Here the sensor is a geometric test (lid within TOLERANCE of
        the jar's axis and within 1 cm of resting on the rim; the sensor's volume is in the `.ttm`), and
        `NothingGrasped` is "no finger in contact with the lid": our grasps are friction, not RLBench's
        attach-on-grasp. Note RVT/3DDA evaluate with the lid-in-sensor test only (MohitShridhar/RLBench
        PR #1); we keep the release check, as the peract branch has it.
        """
        lid, jar = sim.pos("lid"), sim.pos("jar0")
        on_rim = abs(lid[2] - jar[2] - (2 * JAR_HALF + LID_HALF)) < 0.01
        return bool(on_rim and np.linalg.norm(lid[:2] - jar[:2]) < TOLERANCE and not sim.held("lid"))

    def privileged(self, sim: Sim) -> Privileged:
        return {"lid_pos": sim.pos("lid"), "jar_pos": sim.pos("jar0")}

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        yield from pick(s["lid_pos"] + [0, 0, GRASP_Z], 0.0, lift_to=0.2)
        yield from place(s["jar_pos"] + [0, 0, 2 * JAR_HALF + LID_HALF + GRASP_Z + 0.004], 0.0)

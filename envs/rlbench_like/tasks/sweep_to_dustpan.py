"""sweep_to_dustpan_of_size: grasp the broom and sweep every piece of dirt into the named dustpan.

Two dustpans face each other across a pile of five dirt pieces: a tall one (high walls and an upright
handle) and a short one (low walls and a stub handle), on random sides. The broom stands on its head;
the expert grasps the grip on top of its handle, carries it behind the dirt and sweeps in one stroke along
the line through both pans.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, Privileged, Script, Task, Waypoint
from polyact.envs.rlbench_like.tasks.common import grasp_yaw, pick, scatter
from polyact.envs.rlbench_like.variations import Variation, enumerate_variations


@dataclass(frozen=True)
class Pan:
    """A dustpan in its own frame: the open lip on the table at the origin, the floor along +x."""

    depth: float  # lip to back wall
    half_width: float  # inside, between the side walls
    wall: float  # wall height
    handle: tuple[float, float, float]  # the handle's box half-size, on the back wall
    upright: bool  # the handle stands up (a lobby dustpan) or sticks out backward (a hand dustpan)


PANS = {
    "tall": Pan(0.12, 0.085, 0.06, (0.008, 0.008, 0.05), upright=True),
    "short": Pan(0.11, 0.075, 0.02, (0.04, 0.008, 0.006), upright=False),
}
# Held out: the pans named by their overall size instead (the tall pan is the larger in every dimension).
SYNONYMS = {"large": "tall", "small": "short"}
WALL = 0.006  # wall half-thickness
N_DIRT, DIRT_HALF = 5, 0.008
HEAD = (0.055, 0.015, 0.015)  # broom head half-size: along the bristles, across them, height
HANDLE = (0.009, 0.009, 0.02)
GRIP = (0.025, 0.012, 0.02)  # the grip block on top of the handle: wide along the head, for a firm pinch
GRIP_Z = 2 * HEAD[2] + 2 * HANDLE[2] + GRIP[2]  # broom-frame height of the grasp, the grip's centre
GAP = 0.11  # from the dirt pile's centre to each pan's lip
SWEEP_IN = 0.045  # the head's front face stops this far past the target pan's lip
CLEARANCE = 0.004  # head above the table while sweeping
CARRY = 0.12  # the broom's head this high above the table while carried
PAN_RGBA = {"tall": (0.20, 0.45, 0.75, 1.0), "short": (0.85, 0.35, 0.20, 1.0)}
BRISTLES, STICK, DIRT = (0.55, 0.4, 0.2, 1.0), (0.8, 0.7, 0.5, 1.0), (0.3, 0.25, 0.2, 1.0)


def _build_pan(spec: mujoco.MjSpec, name: str, pan: Pan) -> None:
    b, rgba = props.body(spec.worldbody, f"pan_{name}"), PAN_RGBA[name]
    side_half = pan.depth / 2 + WALL
    props.geom(b, props.BOX, (pan.depth / 2, pan.half_width, 0.001), rgba, pos=(pan.depth / 2, 0, 0.001), collide=False)
    for sign in (-1, 1):
        y = sign * (pan.half_width + WALL)
        props.geom(b, props.BOX, (side_half, WALL, pan.wall / 2), rgba, pos=(pan.depth / 2, y, pan.wall / 2))
    back = pan.depth + WALL
    props.geom(b, props.BOX, (WALL, pan.half_width + 2 * WALL, pan.wall / 2), rgba, pos=(back, 0, pan.wall / 2))
    hx, _, hz = pan.handle
    at = (back, 0, pan.wall + hz) if pan.upright else (back + WALL + hx, 0, pan.wall / 2)
    props.geom(b, props.BOX, pan.handle, props.DARK, pos=at)


class SweepToDustpanOfSize(Task):
    """RLBench's `rlbench/tasks/sweep_to_dustpan_of_size.py` (MohitShridhar/RLBench peract branch, PerAct's
    tasks).

    RLBench: 2 variations, the tall and the short dustpan (`:15`, `:52-53`), five pieces of dirt, both pans
    in every episode. Those are our train variations; the suite needs a held-out split and two sizes leave
    no unseen one, so the test variations name the same pans with new words, large and small (the words
    of the RPM-lab-UMN/RLBench fork's instructions), the tall pan being the larger in every dimension.
    RLBench's broom and pans are meshes in its `.ttm`, the broom in a holder (the `broom_holder` shape that
    texture-randomised copies of this task in RLBench forks name).
    Ours are boxes: pans whose floor is a decal at table level (so the dirt needs no ramp), and a broom
    standing on its head with a wide grip block on a short handle, because our gripper is compliant: a
    thin, long handle let the broom tilt under the push and the dirt slip under its head. As in RLBench,
    success does not check that the broom did the sweeping.
    """

    name = "sweep_to_dustpan_of_size"

    def build(self, spec: mujoco.MjSpec) -> None:
        for name, pan in PANS.items():
            _build_pan(spec, name, pan)
        broom = props.body(spec.worldbody, "broom", free=True)  # its origin: the head's bottom centre
        props.geom(broom, props.BOX, HEAD, BRISTLES, pos=(0, 0, HEAD[2]), mass=0.08)
        props.geom(broom, props.BOX, HANDLE, STICK, pos=(0, 0, 2 * HEAD[2] + HANDLE[2]), mass=0.015)
        props.geom(broom, props.BOX, GRIP, props.DARK, pos=(0, 0, GRIP_Z), mass=0.015)
        broom.add_site(name="broom_grip", pos=[0, 0, GRIP_Z])
        for i in range(N_DIRT):
            props.geom(props.body(spec.worldbody, f"dirt{i}", free=True), props.BOX, (DIRT_HALF,) * 3, DIRT, mass=0.005)

    def variations(self) -> tuple[Variation, ...]:
        def texts(size: str) -> list[str]:
            return [
                f"sweep the dirt into the {size} dustpan",
                f"use the broom to brush the dirt into the {size} dustpan",
                f"clean up the dirt with the {size} pan",
            ]

        train = [("train", {"size": s}, texts(s)) for s in PANS]
        test = [("test", {"size": s}, texts(s)) for s in SYNONYMS]
        return enumerate_variations(train + test)

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        size = variation.params["size"]
        self._pan = SYNONYMS.get(size, size)
        centre = np.array([rng.uniform(0.52, 0.57), rng.uniform(-0.03, 0.03)])
        turn = rng.uniform(-0.2, 0.2)
        axis = np.array([-np.sin(turn), np.cos(turn)])  # the line through both pans (the world y axis, turned)
        for name, sign in zip(PANS, rng.permutation([-1.0, 1.0]), strict=True):
            lip = centre + sign * GAP * axis
            sim.move_fixed(f"pan_{name}", [lip[0], lip[1], 0.0], yaw=turn + sign * np.pi / 2)
        rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        pile = scatter(rng, N_DIRT, 2.6 * DIRT_HALF, x=(-0.03, 0.03), y=(-0.03, 0.03))
        for i, xy in enumerate(pile):
            at = centre + rot @ xy
            sim.place(f"dirt{i}", [at[0], at[1], DIRT_HALF], yaw=rng.uniform(-np.pi, np.pi))
        sim.place("broom", [rng.uniform(0.32, 0.35), rng.uniform(-0.04, 0.04), 0.0], yaw=rng.uniform(-0.3, 0.3))

    def in_pan(self, sim: Sim, pan: str) -> list[bool]:
        """Which dirt pieces lie inside `pan`: over its floor, between its walls, below their top."""
        spec, body = PANS[pan], sim.model.body(f"pan_{pan}").id
        rot, origin = sim.data.xmat[body].reshape(3, 3), sim.data.xpos[body]
        inside = []
        for i in range(N_DIRT):
            x, y, z = rot.T @ (sim.pos(f"dirt{i}") - origin)
            inside.append(bool(0.0 < x < spec.depth and abs(y) < spec.half_width and z < spec.wall))
        return inside

    def success(self, sim: Sim) -> bool:
        """Every piece of dirt lies inside the named dustpan.

        RLBench `rlbench/tasks/sweep_to_dustpan_of_size.py:34-37`: one
        `DetectedCondition(dirt<i>, ProximitySensor('success_<size>'))` per piece, all five required
        (`rlbench/backend/task.py:297-298`: every registered condition must hold). The sensor's volume is in
        the `.ttm`; ours is the pan's interior: over its floor, between its walls, below their top.
        """
        return all(self.in_pan(sim, self._pan))

    def privileged(self, sim: Sim) -> Privileged:
        lip = sim.pos(f"pan_{self._pan}")
        into = sim.data.xmat[sim.model.body(f"pan_{self._pan}").id].reshape(3, 3)[:, 0]
        return {
            "grip_pos": sim.site("broom_grip"),
            "broom_pos": sim.pos("broom"),
            "broom_yaw": sim.yaw("broom"),
            "dirt_pos": [sim.pos(f"dirt{i}") for i in range(N_DIRT)],
            "lip_pos": lip,
            "into_pan": into,
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        # Fingers along the head: the push then turns the broom about the fingers' axis, which the pads'
        # friction holds; about any other axis it would open the compliant gripper and tilt the broom.
        yield from pick(s["grip_pos"], grasp_yaw(s["broom_yaw"] - np.pi / 2, np.pi), lift_to=s["grip_pos"][2] + CARRY)
        s, tcp = p()["task"], p()["target_pos"]
        into, lip = s["into_pan"], s["lip_pos"]
        yaw = grasp_yaw(float(np.arctan2(into[1], into[0])), np.pi)
        offset = s["broom_pos"] - tcp  # the head's bottom centre from the tcp; right below it, so the turn keeps it
        rearmost = min(float(np.dot(d - lip, into)) for d in s["dirt_pos"])
        behind = rearmost - np.sqrt(2) * DIRT_HALF - HEAD[1] - 0.015

        def head_at(along: float, z: float) -> np.ndarray:
            return lip + along * into + [0.0, 0.0, z] - offset

        yield Waypoint(head_at(behind, CARRY), yaw, CLOSE)
        yield Waypoint(head_at(behind, CLEARANCE), yaw, CLOSE, speed=0.2)
        yield Waypoint(head_at(SWEEP_IN - HEAD[1], CLEARANCE), yaw, CLOSE, speed=0.12)
        yield Waypoint(head_at(SWEEP_IN - HEAD[1], CARRY), yaw, CLOSE, speed=0.2)

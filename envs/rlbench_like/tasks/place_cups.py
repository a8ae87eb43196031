"""place_cups: hang 1, 2 or 3 mugs by their handles on the spokes of a mug tree (three mugs on the table).

RLBench `rlbench/tasks/place_cups.py` (stepjam/RLBench): three mugs and a holder with three spokes; the
variation is how many mugs to place (3 variations). Held out: placing all three (the train counts are
one and two). What differs, and why: RLBench's mugs and mug tree are meshes; here a mug is a straight
cup of box staves (stack_cups.add_cup) with a closed rectangular handle of three bars, and the holder is
a cylinder trunk with three square spokes (MJX collides only convex parts). The spoke passes through the
handle, as on RLBench's tree, and a hung mug swings until its handle jams on the spoke, tilted. The
spokes' layout (one low toward the robot, two higher to the sides, rising toward their tips) is chosen
so that a top-down grasp on the rim can reach every spoke; RLBench turns the whole scene by up to
+-90 degrees, here the holder by up to +-0.3 rad.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.rotations import axis_angle, quat_mul, yaw_quat
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, OPEN, Privileged, Script, Task, Waypoint
from polyact.envs.rlbench_like.tasks.common import APPROACH, GRIP_STEPS, grasp_yaw, scatter
from polyact.envs.rlbench_like.tasks.stack_cups import WALL, add_cup
from polyact.envs.rlbench_like.variations import Variation, enumerate_variations

N_MUGS = 3
MUG_R, MUG_H = 0.033, 0.08  # the wall's mid-plane radius, the height
MUG_RGBA = (0.92, 0.9, 0.84, 1.0)
BAR = 0.003  # half thickness of a handle bar
HANDLE_HALF_Y = 0.006  # the handle's half thickness along the mug's y (the hole's axis)
LOOP_HALF_R, LOOP_HALF_Z = 0.011, 0.013  # the handle hole's half extents (radial, vertical)
LOOP_R, LOOP_Z = MUG_R + WALL / 2 + LOOP_HALF_R, 0.044  # the hole's centre in the mug's frame (x: to the handle)
TRUNK_R, TRUNK_TOP = 0.012, 0.28
SPOKE_HALF = 0.006  # half side of a spoke's square section
SPOKE_LEN = 0.105  # from the trunk's axis to the spoke's tip
# Spoke k takes the k-th mug placed. In the holder's frame (pi points at the robot): a low spoke toward the
# robot, then two high ones to the sides, so every spoke's tip is reachable from the table in front without
# passing behind the trunk, and the wrist above a hand hanging a mug on one spoke misses the other spokes.
SPOKE_Z = (0.14, 0.27, 0.27)
SPOKE_ANGLES = (np.pi, np.pi / 2, -np.pi / 2)
SPOKE_RISE = 0.17  # rad: spokes rise toward their tips, so a hung mug settles toward the trunk
HANG = 0.055  # the expert slides a handle this far along its spoke from the trunk's axis
GRASP_DEPTH = 0.02  # tcp below the rim when pinching the wall: deep, as the handle's weight twists the mug
CLEARANCE = 0.03  # the handle starts this far beyond the spoke's tip before it slides on
YAW_LIMIT = 2.0  # rad: the gripper yaws the expert turns a mug to (the wrist reaches about -2 to 2.7)
TRAVEL_Z = 0.5  # tcp height for carrying a mug: its bottom above the holder's top and every hung mug
_COUNT_WORDS = {1: "1", 2: "two", 3: "three"}
ON_SPOKE = 0.015  # success: a handle's hole centre this close to a spoke's axis, the handle wholly on it


class PlaceCups(Task):
    name = "place_cups"

    def build(self, spec: mujoco.MjSpec) -> None:
        holder = props.body(spec.worldbody, "holder")
        props.geom(holder, props.CYLINDER, (0.07, 0.006), props.DARK, pos=(0, 0, 0.006))
        props.geom(holder, props.CYLINDER, (TRUNK_R, TRUNK_TOP / 2), props.GREY, pos=(0, 0, TRUNK_TOP / 2))
        half_len = (SPOKE_LEN - TRUNK_R / 2) / 2
        mid = SPOKE_LEN - half_len
        for k, (z, angle) in enumerate(zip(SPOKE_Z, SPOKE_ANGLES, strict=True)):
            props.geom(
                holder,
                props.BOX,
                (half_len, SPOKE_HALF, SPOKE_HALF),
                props.GREY,
                pos=mid * _spoke_direction(angle) + [0.0, 0.0, z],
                quat=quat_mul(yaw_quat(angle), axis_angle(np.array([0.0, 1.0, 0.0]), -SPOKE_RISE)),
                name=f"spoke{k}",
            )
        for i in range(N_MUGS):
            mug = props.body(spec.worldbody, f"mug{i}", free=True)
            add_cup(mug, MUG_R, MUG_R, MUG_H, MUG_RGBA, mass=0.03)
            _add_handle(mug)

    def variations(self) -> tuple[Variation, ...]:
        """RLBench's four phrasings, the count spelt as the suite's instructions spell counts."""
        entries = []
        for n, word in _COUNT_WORDS.items():
            s, them, their = ("", "it", "its") if n == 1 else ("s", "them", "their")
            instructions = [
                f"place {word} cup{s} on the cup holder",
                f"pick up {word} cup{s} and put {them} on the mug tree",
                f"move {word} mug{s} from the table to the cup holder",
                f"pick up {word} mug{s} and slide {their} handle{s} onto the spokes of the mug holder",
            ]
            entries.append(("test" if n == 3 else "train", {"count": n}, instructions))
        return enumerate_variations(entries)

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._count = variation.params["count"]
        holder = np.array([rng.uniform(0.54, 0.58), rng.uniform(-0.08, 0.08)])
        sim.move_fixed("holder", [holder[0], holder[1], 0.0], yaw=rng.uniform(-0.3, 0.3))
        spots = scatter(rng, N_MUGS, 0.15, x=(0.3, 0.52), avoid=[(holder, 0.22)])
        for i, xy in enumerate(spots):
            sim.place(f"mug{i}", [xy[0], xy[1], 0.0], yaw=rng.uniform(-np.pi, np.pi))

    def _spokes(self, sim: Sim) -> list[tuple[np.ndarray, np.ndarray]]:
        """(the point on the trunk's axis at the spoke's height, the spoke's direction) of each spoke."""
        base = sim.pos("holder")
        out = []
        for k, z in enumerate(SPOKE_Z):
            gid = sim.model.geom(f"spoke{k}").id
            out.append((base + [0.0, 0.0, z], sim.data.geom_xmat[gid].reshape(3, 3)[:, 0].copy()))
        return out

    def _hooked(self, sim: Sim, mug: str) -> bool:
        """The mug's handle hole is around a spoke: its centre near the spoke's axis, along its length."""
        hole = _hole(sim, mug)
        for origin, direction in self._spokes(sim):
            along = float((hole - origin) @ direction)
            off = np.linalg.norm(hole - origin - along * direction)
            if TRUNK_R < along < SPOKE_LEN - 2 * HANDLE_HALF_Y and off < ON_SPOKE:
                return True
        return False

    def success(self, sim: Sim) -> bool:
        """At least `count` mugs hang on spokes and no finger touches a mug.

        RLBench `rlbench/tasks/place_cups.py`: `NothingGrasped(gripper)` and, for mugs 0..count-1, an
        `OrConditions` of `DetectedCondition(mug, success_detector<k>)` over the three spokes' proximity
        sensors (their volumes are in the `.ttm`). Here "on a spoke" is geometric (the handle's hole centre
        within ON_SPOKE of a spoke's axis, between trunk and tip), any mugs count (ours are identical, where
        RLBench names which mugs), and `NothingGrasped` is "no finger in contact with any mug".
        """
        mugs = [f"mug{i}" for i in range(N_MUGS)]
        if any(sim.held(m) for m in mugs):
            return False
        return sum(self._hooked(sim, m) for m in mugs) >= self._count

    def privileged(self, sim: Sim) -> Privileged:
        spokes = self._spokes(sim)
        return {
            "mug_pos": [sim.pos(f"mug{i}") for i in range(N_MUGS)],
            "mug_yaw": [sim.yaw(f"mug{i}") for i in range(N_MUGS)],
            "hole_pos": [_hole(sim, f"mug{i}") for i in range(N_MUGS)],
            "spoke_origin": [origin for origin, _ in spokes],
            "spoke_dir": [direction for _, direction in spokes],
        }

    def script(self, p: Callable[[], Privileged]) -> Script:
        """Eight waypoints a mug (three mugs fit in 25 keyframes): pinch the rim opposite the handle, lift
        it on a slant to high above the spot beyond the spoke's tip while turning the hole's axis along the
        spoke, lower it there, slide the handle along the spoke, let go, and rise. The mug turns a little
        in the grasp as it is carried, so the turn and the hole's offset from the tcp are measured again
        before each of the last moves."""
        left = list(range(N_MUGS))
        for k in range(self._count):
            s = p()["task"]
            origin, direction = s["spoke_origin"][k], s["spoke_dir"][k]
            beyond = origin + (SPOKE_LEN + HANDLE_HALF_Y + CLEARANCE) * direction
            i = min(left, key=lambda j: float(np.linalg.norm(s["mug_pos"][j][:2] - beyond[:2])))
            left.remove(i)
            psi = s["mug_yaw"][i]
            yaw = grasp_yaw(psi - np.pi / 2, np.pi)  # the fingers close along the handle's direction
            rim = s["mug_pos"][i] + [-MUG_R * np.cos(psi), -MUG_R * np.sin(psi), MUG_H - GRASP_DEPTH]
            yield Waypoint(rim + [0.0, 0.0, APPROACH], yaw, OPEN)
            yield Waypoint(rim, yaw, OPEN, speed=0.3)
            yield Waypoint(rim, yaw, CLOSE, dwell=GRIP_STEPS)
            yaw, hole = _aim(p(), i, direction, yaw, at=beyond)
            yield Waypoint(np.array([*(beyond - hole)[:2], TRAVEL_Z]), yaw, CLOSE, speed=0.3)
            yaw, hole = _aim(p(), i, direction, yaw)
            yield Waypoint(beyond - hole, yaw, CLOSE)
            yaw, hole = _aim(p(), i, direction, yaw)
            hung = origin + HANG * direction - hole
            yield Waypoint(hung, yaw, CLOSE, speed=0.1)
            yield Waypoint(hung, yaw, OPEN, dwell=GRIP_STEPS)
            yield Waypoint(np.array([hung[0], hung[1], TRAVEL_Z]), yaw, OPEN, speed=0.3)


def _aim(
    p: Privileged, mug: int, spoke: np.ndarray, yaw: float, at: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """(gripper yaw, hole centre from the tcp) once the held mug is turned so that its hole's axis (the
    mug's y) lines up with the spoke; `yaw` is the gripper's commanded yaw now. Turning the least does it,
    and so does half a turn the other way: given `at` (where the hole is to go), the turn that keeps the
    gripper's yaw within YAW_LIMIT and brings the tcp nearer the robot's base (the easier pose) wins."""
    s = p["task"]
    least = grasp_yaw(float(np.arctan2(spoke[1], spoke[0])) + np.pi / 2 - s["mug_yaw"][mug], np.pi)
    hole = s["hole_pos"][mug] - p["target_pos"]
    if at is None:
        return yaw + least, _turn(hole, least)
    options = [(yaw + t, _turn(hole, t)) for t in (least, least - np.sign(least) * np.pi)]
    return min(options, key=lambda o: (abs(o[0]) > YAW_LIMIT, float(np.linalg.norm((at - o[1])[:2]))))


def _spoke_direction(angle: float) -> np.ndarray:
    """The unit vector along a spoke at `angle` about the trunk, rising SPOKE_RISE toward its tip."""
    return np.array([np.cos(angle) * np.cos(SPOKE_RISE), np.sin(angle) * np.cos(SPOKE_RISE), np.sin(SPOKE_RISE)])


def _hole(sim: Sim, mug: str) -> np.ndarray:
    """The centre of the mug's handle hole (world frame)."""
    return sim.pos(mug) + sim.data.xmat[sim.model.body(mug).id].reshape(3, 3) @ [LOOP_R, 0.0, LOOP_Z]


def _turn(v: np.ndarray, angle: float) -> np.ndarray:
    """`v` turned by `angle` about the world z axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


def _add_handle(mug: mujoco.MjsBody) -> None:
    """A closed loop on the mug's +x side: top and bottom bars out from the wall and an outer upright."""
    outer = LOOP_R + LOOP_HALF_R  # the hole's outer edge; its inner edge is the wall's outer face
    half_bar = (outer + 2 * BAR - MUG_R) / 2
    for z in (LOOP_Z - LOOP_HALF_Z - BAR, LOOP_Z + LOOP_HALF_Z + BAR):
        props.geom(mug, props.BOX, (half_bar, HANDLE_HALF_Y, BAR), MUG_RGBA, pos=(MUG_R + half_bar, 0, z), mass=0.002)
    props.geom(
        mug,
        props.BOX,
        (BAR, HANDLE_HALF_Y, LOOP_HALF_Z + 2 * BAR),
        MUG_RGBA,
        pos=(outer + BAR, 0, LOOP_Z),
        mass=0.002,
    )

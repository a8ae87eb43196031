"""The drawer tasks on one three-drawer cabinet: open_drawer, close_drawer (held out) and
put_item_in_drawer. Variations: which drawer; the middle one is held out.

The cabinet stands on the table facing the robot (its front is its local -x side) at a random place
and turn; each drawer slides out along local -x up to OPEN_LIMIT and has a vertical bar handle, which
the expert grasps with the gripper pointing into the cabinet, tilted down by TILT (see `pointing`).
The cabinet stands on a plinth so the bottom handle is within that grasp's reach.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from polyact.envs.rlbench_like import props
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import CLOSE, OPEN, Privileged, Script, Task, Waypoint, pointing
from polyact.envs.rlbench_like.tasks.common import GRIP_STEPS, grasp_yaw, pick, place, scatter
from polyact.envs.rlbench_like.variations import Variation, enumerate_variations

DRAWERS = ("bottom", "middle", "top")
PLINTH = 0.08
TILT = 1.0  # rad below the horizontal
TRAIN_DRAWERS, TEST_DRAWERS = ("bottom", "top"), ("middle",)
D, W = 0.11, 0.13  # cabinet half depth and half width
OPEN_LIMIT = 0.18  # slide travel: room past RLBench's 0.15 m success threshold
OPENED = 0.15  # open_drawer success: the slide joint moved more than this (RLBench's JointCondition)
HANDLE_OUT = 0.032  # handle bar centre in front of the drawer face
WOOD = (0.62, 0.45, 0.30, 1.0)
FRONT = (0.80, 0.78, 0.72, 1.0)
ITEM_HALF = 0.02
DROP_X = 0.065  # drawer-frame x of the item drop point (the drawer's front part, out of the cabinet when open)


def drawer_z(k: int) -> float:
    return PLINTH + 0.06 + 0.1 * k


def _build_cabinet(spec: mujoco.MjSpec) -> None:
    cab = props.body(spec.worldbody, "cabinet")
    props.geom(cab, props.BOX, (D - 0.01, W - 0.01, PLINTH / 2), props.DARK, pos=(0.01, 0, PLINTH / 2))
    for z in (0.01, 0.11, 0.21, 0.31):  # floor, two shelves, roof
        props.geom(cab, props.BOX, (D, W, 0.01), WOOD, pos=(0, 0, PLINTH + z))
    for sign in (-1, 1):
        props.geom(cab, props.BOX, (D, 0.01, 0.16), WOOD, pos=(0, sign * (W - 0.01), PLINTH + 0.16))
    props.geom(cab, props.BOX, (0.01, W, 0.16), WOOD, pos=(D - 0.01, 0, PLINTH + 0.16))
    for k, name in enumerate(DRAWERS):
        dr = props.body(cab, f"drawer_{name}", pos=(-D, 0, drawer_z(k)))
        dr.add_joint(
            name=f"drawer_{name}_joint",
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[-1, 0, 0],
            range=[0, OPEN_LIMIT],
            damping=8.0,
            frictionloss=0.3,
            armature=0.05,
        )
        props.geom(dr, props.BOX, (0.008, W - 0.015, 0.038), FRONT, pos=(0.008, 0, 0), mass=0.3)
        props.geom(dr, props.BOX, (0.085, W - 0.02, 0.004), WOOD, pos=(0.101, 0, -0.034), mass=0.2)
        props.geom(dr, props.BOX, (0.006, W - 0.02, 0.025), WOOD, pos=(0.192, 0, -0.01), mass=0.05)
        for sign in (-1, 1):
            props.geom(dr, props.BOX, (0.085, 0.004, 0.025), WOOD, pos=(0.101, sign * (W - 0.024), -0.01), mass=0.05)
            props.geom(
                dr, props.BOX, (HANDLE_OUT / 2, 0.004, 0.004), props.DARK, pos=(-HANDLE_OUT / 2, 0, sign * 0.026)
            )
        props.geom(dr, props.BOX, (0.006, 0.006, 0.032), props.DARK, pos=(-HANDLE_OUT, 0, 0), mass=0.02)
        dr.add_site(name=f"drawer_{name}_handle", pos=[-HANDLE_OUT, 0, 0])
        dr.add_site(name=f"drawer_{name}_drop", pos=[DROP_X, 0, -0.03 + ITEM_HALF + 0.006])
        spec.add_exclude(bodyname1="cabinet", bodyname2=f"drawer_{name}")


def _place_cabinet(sim: Sim, rng: np.random.Generator) -> float:
    x, y = rng.uniform(0.66, 0.72), rng.uniform(-0.12, 0.12)
    yaw = float(np.arctan2(y, x)) + rng.uniform(-0.25, 0.25)  # roughly facing the robot
    sim.move_fixed("cabinet", [x, y, 0.0], yaw=yaw)
    return yaw


def _clear_of(tcp: np.ndarray, handle: np.ndarray) -> np.ndarray:
    """Where to turn the gripper to its tilted grasp: up and back from the handle, toward the robot."""
    return np.array([min(tcp[0], handle[0] - 0.15), 0.5 * (tcp[1] + handle[1]), max(tcp[2], 0.3)])


def _drawer_variations(texts: Callable[[str], list[str]]) -> tuple[Variation, ...]:
    return enumerate_variations([("test" if d in TEST_DRAWERS else "train", {"drawer": d}, texts(d)) for d in DRAWERS])


class _DrawerTask(Task):
    def build(self, spec: mujoco.MjSpec) -> None:
        _build_cabinet(spec)

    def _start(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._drawer = variation.params["drawer"]
        self._yaw = _place_cabinet(sim, rng)

    def opening(self, sim: Sim) -> float:
        return sim.joint(f"drawer_{self._drawer}_joint")

    def privileged(self, sim: Sim) -> Privileged:
        return {
            "drawer": self._drawer,
            "opening": self.opening(sim),
            "handle_pos": sim.site(f"drawer_{self._drawer}_handle"),
            "drop_pos": sim.site(f"drawer_{self._drawer}_drop"),
            "cabinet_yaw": self._yaw,
        }

    def _open(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        yaw = s["cabinet_yaw"]
        a = np.array([np.cos(yaw), np.sin(yaw), 0.0])  # into the cabinet, level
        d = np.array([np.cos(yaw) * np.cos(TILT), np.sin(yaw) * np.cos(TILT), -np.sin(TILT)])  # gripper axis
        grip = pointing(yaw, TILT)
        handle = s["handle_pos"]
        # Tilt first, where the arm has room, then come in level from well in front: from above, the
        # open fingers would straddle the handle of the drawer above.
        yield Waypoint(_clear_of(p()["target_pos"], handle), gripper=OPEN, orientation=grip)
        yield Waypoint(handle - 0.11 * a + [0, 0, 0.05], gripper=OPEN, orientation=grip)
        yield Waypoint(handle - 0.07 * a, gripper=OPEN, orientation=grip, speed=0.2)
        yield Waypoint(handle, gripper=OPEN, orientation=grip, speed=0.15)
        yield Waypoint(handle, gripper=CLOSE, orientation=grip, dwell=GRIP_STEPS)
        yield Waypoint(handle - (OPEN_LIMIT + 0.01) * a, gripper=CLOSE, orientation=grip, speed=0.12)
        yield Waypoint(handle - (OPEN_LIMIT + 0.01) * a, gripper=OPEN, orientation=grip, dwell=GRIP_STEPS)
        out = p()["task"]["handle_pos"] - 0.08 * d
        yield Waypoint(out, gripper=OPEN, orientation=grip, speed=0.2)
        yield Waypoint(out + [0, 0, 0.1], yaw, OPEN)


class OpenDrawer(_DrawerTask):
    name = "open_drawer"

    def variations(self) -> tuple[Variation, ...]:
        return _drawer_variations(
            lambda d: [f"open the {d} drawer", f"pull the {d} drawer open", f"slide the {d} drawer out"]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._start(sim, rng, variation)

    def success(self, sim: Sim) -> bool:
        """The drawer's slide joint moved more than OPENED (0.15 m) from closed.

        RLBench `rlbench/tasks/open_drawer.py:22-23` (MohitShridhar/RLBench peract branch):
        `JointCondition(Joint('drawer_joint_<option>'), 0.15)`, no `NothingGrasped`. Same threshold here.
        Differences: RLBench measures |change| from the episode's start while every drawer here starts
        closed at 0 and can only open, so the two agree; RLBench's travel is in its `.ttm` (unknown), ours
        is OPEN_LIMIT (0.18 m).
        """
        return self.opening(sim) > OPENED

    def script(self, p: Callable[[], Privileged]) -> Script:
        yield from self._open(p)


class CloseDrawer(_DrawerTask):
    name = "close_drawer"

    def variations(self) -> tuple[Variation, ...]:
        return _drawer_variations(
            lambda d: [f"close the {d} drawer", f"push the {d} drawer shut", f"slide the {d} drawer closed"]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._start(sim, rng, variation)
        sim.set_joint(f"drawer_{self._drawer}_joint", rng.uniform(0.11, OPEN_LIMIT))

    def success(self, sim: Sim) -> bool:
        return self.opening(sim) < 0.02

    def script(self, p: Callable[[], Privileged]) -> Script:
        s = p()["task"]
        yaw = s["cabinet_yaw"]
        a = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        d = np.array([np.cos(yaw) * np.cos(TILT), np.sin(yaw) * np.cos(TILT), -np.sin(TILT)])
        grip = pointing(yaw, TILT)
        handle = s["handle_pos"]
        touch = 0.006 + 0.01 * np.cos(TILT)  # level distance from the tcp to the bar's axis at contact
        front = handle - (touch + 0.015) * a  # closed fingertips just clear of the bar
        shut = handle + (s["opening"] + 0.005 - touch) * a  # pushed 5 mm past closed: the joint limit stops it
        yield Waypoint(_clear_of(p()["target_pos"], handle), gripper=CLOSE, orientation=grip)
        yield Waypoint(front - 0.08 * d, gripper=CLOSE, orientation=grip)
        yield Waypoint(front, gripper=CLOSE, orientation=grip, speed=0.2)
        yield Waypoint(shut, gripper=CLOSE, orientation=grip, speed=0.15)
        yield Waypoint(shut - 0.08 * d, gripper=CLOSE, orientation=grip, speed=0.2)


class PutItemInDrawer(_DrawerTask):
    name = "put_item_in_drawer"

    def build(self, spec: mujoco.MjSpec) -> None:
        super().build(spec)
        item = props.body(spec.worldbody, "item", free=True)
        props.geom(item, props.BOX, (ITEM_HALF,) * 3, (0.95, 0.55, 0.1, 1), mass=0.06)

    def variations(self) -> tuple[Variation, ...]:
        return _drawer_variations(
            lambda d: [
                f"put the item in the {d} drawer",
                f"open the {d} drawer and put the block inside",
                f"place the cube in the {d} drawer",
            ]
        )

    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        self._start(sim, rng, variation)
        cabinet = sim.model.body_pos[sim.model.body("cabinet").id].copy()
        xy = scatter(rng, 1, 0.0, x=(0.34, 0.46), avoid=[(cabinet - [0.15, 0, 0], 0.3)])[0]
        sim.place("item", [xy[0], xy[1], ITEM_HALF], yaw=rng.uniform(-np.pi, np.pi))

    def success(self, sim: Sim) -> bool:
        drawer = sim.model.body(f"drawer_{self._drawer}").id
        rot = sim.data.xmat[drawer].reshape(3, 3)
        local = rot.T @ (sim.pos("item") - sim.data.xpos[drawer])
        return bool(0.016 < local[0] < 0.186 and abs(local[1]) < W - 0.028 and -0.035 < local[2] < 0.02)

    def privileged(self, sim: Sim) -> Privileged:
        return {**super().privileged(sim), "item_pos": sim.pos("item"), "item_yaw": sim.yaw("item")}

    def script(self, p: Callable[[], Privileged]) -> Script:
        yield from self._open(p)
        s = p()["task"]
        travel = max(0.3, s["drop_pos"][2] + 0.12)  # carry the item above the open drawer's walls
        yaw = grasp_yaw(s["item_yaw"])
        # Over to the item at travel height first: a diagonal move down from the handle swept the hand
        # into the open drawer's side wall and pushed it half shut.
        yield Waypoint(np.array([s["item_pos"][0], s["item_pos"][1], travel]), yaw, OPEN)
        yield from pick(s["item_pos"], yaw, lift_to=travel)
        yield from place(p()["task"]["drop_pos"], grasp_yaw(s["cabinet_yaw"]), retreat_to=travel)

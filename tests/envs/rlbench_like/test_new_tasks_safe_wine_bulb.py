"""put_money_in_safe, place_wine_at_rack_location and light_bulb_in beyond what test_tasks.py checks of
every task: the same skill aimed at another shelf, cradle or bulb does not count, and the success tests
are strict (placed elsewhere, lifted, or still held fails)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Privileged
from polyact.envs.rlbench_like.tasks.light_bulb_in import LAMP_FLOOR, LightBulbIn
from polyact.envs.rlbench_like.tasks.put_money_in_safe import MONEY, SAFE_D, SHELVES, PutMoneyInSafe
from polyact.envs.rlbench_like.tasks.wine_rack import BODY_R, SLOTS, PlaceWineAtRackLocation

from .conftest import run_expert

TASKS = (PutMoneyInSafe, PlaceWineAtRackLocation, LightBulbIn)


def _other(names, name: str) -> str:
    return next(n for n in names if n != name)


@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds(task_env, task):
    env = task_env(task())
    assert run_expert(env, seed=2)
    assert env.task_impl.success(env.sim)  # still solved when the script has ended
    env.sim.touching = lambda a, b: True  # the same state with a finger on the object: RLBench's NothingGrasped
    assert not env.task_impl.success(env.sim)


class _MoneyOnAnotherShelf(PutMoneyInSafe):
    """The expert's skill aimed at a shelf the instruction does not name."""

    def privileged(self, sim: Sim) -> Privileged:
        return {**super().privileged(sim), "shelf": _other(SHELVES, self._shelf)}


class _BottleInAnotherCradle(PlaceWineAtRackLocation):
    """The expert's skill aimed at a cradle the instruction does not name."""

    def privileged(self, sim: Sim) -> Privileged:
        return {**super().privileged(sim), "slot": _other(SLOTS, self._slot)}


class _TheOtherBulb(LightBulbIn):
    """The expert's skill applied to the bulb in the holder of the other colour."""

    def privileged(self, sim: Sim) -> Privileged:
        return {**super().privileged(sim), "target": 1}


def _money_on(env: RLBenchLikeEnv, shelf: str) -> bool:
    sim = env.sim
    safe = sim.model.body("safe").id
    local = sim.data.xmat[safe].reshape(3, 3).T @ (sim.pos("money") - sim.data.xpos[safe])
    return bool(local[0] > -SAFE_D and abs(local[2] - MONEY[2] - SHELVES[shelf]) < 0.01)


@pytest.mark.parametrize("variation", range(3))
def test_money_on_another_shelf_fails(task_env, variation):
    env = task_env(_MoneyOnAnotherShelf())
    assert not run_expert(env, seed=1, variation=variation)
    assert _money_on(env, _other(SHELVES, env.variation.params["shelf"]))  # it did put it there


@pytest.mark.parametrize("seed", [1, 2])
def test_bottle_in_another_cradle_fails(task_env, seed):
    env = task_env(_BottleInAnotherCradle())
    assert not run_expert(env, seed)
    other = env.sim.pos(f"cradle_{_other(SLOTS, env.variation.params['slot'])}")
    assert np.linalg.norm(env.sim.pos("bottle")[:2] - other[:2]) < 0.03  # it did lay it there


@pytest.mark.parametrize("seed", [1, 2])
def test_bulb_of_the_other_colour_fails(task_env, seed):
    env = task_env(_TheOtherBulb())
    assert not run_expert(env, seed)
    bulb, lamp = env.sim.pos("bulb1"), env.sim.pos("lamp")
    assert np.linalg.norm(bulb[:2] - lamp[:2]) < 0.01 and abs(bulb[2] - lamp[2] - LAMP_FLOOR) < 0.01


def _check(env: RLBenchLikeEnv, body: str, cases) -> None:
    """Put free `body` at each (pos, yaw) and compare the success test with what is expected."""
    for pos, yaw, expected in cases:
        env.sim.place(body, pos, yaw=yaw)
        mujoco.mj_forward(env.model, env.data)
        assert env.task_impl.success(env.sim) is expected, (pos, yaw)


def test_money_must_lie_inside_on_the_named_shelf(task_env):
    env = task_env(PutMoneyInSafe())
    top_variation = next(v.index for v in env.variations if v.params["shelf"] == "top")
    env.reset(seed=0, options={"variation": top_variation})
    safe = env.sim.model.body("safe").id
    rot, origin = env.sim.data.xmat[safe].reshape(3, 3), env.sim.data.xpos[safe]
    yaw = env.sim.yaw("safe")

    def at(x: float, shelf: str, lift: float = 0.0) -> np.ndarray:
        return origin + rot @ np.array([x, 0.0, SHELVES[shelf] + MONEY[2] + lift])

    _check(
        env,
        "money",
        [
            (at(0.0, "top"), yaw, True),
            (at(0.0, "middle"), yaw, False),
            (at(0.0, "bottom"), yaw, False),
            (at(-SAFE_D - 0.02, "top"), yaw, False),  # its centre in front of the safe
            (at(0.0, "top", lift=0.03), yaw, False),
        ],
    )


def test_bottle_must_lie_along_the_named_cradle(task_env):
    env = task_env(PlaceWineAtRackLocation())
    left_variation = next(v.index for v in env.variations if v.params["slot"] == "left")
    env.reset(seed=0, options={"variation": left_variation})
    yaw = env.sim.yaw("rack")
    left, right = (env.sim.pos(f"cradle_{s}") + [0, 0, BODY_R] for s in ("left", "right"))
    _check(
        env,
        "bottle",
        [
            (left, yaw, True),
            (left, yaw + np.pi, True),  # either end first
            (right, yaw, False),
            (left, yaw + np.pi / 2, False),  # across the cradle
            (left + [0, 0, 0.03], yaw, False),
        ],
    )


def test_bulb_must_be_seated_in_the_lamp(task_env):
    env = task_env(LightBulbIn())
    env.reset(seed=0)
    seated = env.sim.pos("lamp") + [0, 0, LAMP_FLOOR]
    _check(env, "bulb0", [(seated, 0.0, True), (seated + [0, 0, 0.03], 0.0, False)])
    env.sim.place("bulb1", seated)  # the other colour's bulb in the lamp, the named one back in its holder
    _check(env, "bulb0", [(env.sim.pos("holder0") + [0, 0, 0.03], 0.0, False)])

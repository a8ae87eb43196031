"""reach_and_drag and sweep_to_dustpan_of_size beyond what test_tasks.py checks of every task: the task
stays solved when the script ends, the same skill aimed at the wrong square or pan does not count, and
the success tests are strict."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import Privileged
from polyact.envs.rlbench_like.tasks.reach_and_drag import CUBE_HALF, ReachAndDrag
from polyact.envs.rlbench_like.tasks.sweep_to_dustpan import DIRT_HALF, N_DIRT, PANS, SYNONYMS, SweepToDustpanOfSize

from .conftest import run_expert

TASKS = (ReachAndDrag, SweepToDustpanOfSize)


def _named_pan(env: RLBenchLikeEnv) -> str:
    size = env.variation.params["size"]
    return SYNONYMS.get(size, size)


def _fill_pan(env: RLBenchLikeEnv, pan: str) -> tuple[np.ndarray, np.ndarray]:
    """Put every piece of dirt in a row across the middle of `pan`'s floor; the pan's (rotation, lip)."""
    sim = env.sim
    body = sim.model.body(f"pan_{pan}").id
    rot, lip = sim.data.xmat[body].reshape(3, 3), sim.data.xpos[body].copy()
    for i in range(N_DIRT):
        sim.place(f"dirt{i}", lip + rot @ np.array([0.05, (i - 2) * 0.025, DIRT_HALF]))
    mujoco.mj_forward(env.model, env.data)
    return rot, lip


@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds(task_env, task):
    env = task_env(task())
    assert run_expert(env, seed=2)
    assert env.task_impl.success(env.sim)  # and the task is still solved when the script has ended


class _DragToDistractor(ReachAndDrag):
    """The expert's skill aimed at a distractor square instead of the named one."""

    def privileged(self, sim: Sim) -> Privileged:
        return {**super().privileged(sim), "target_pos": sim.pos("distractor0")}


@pytest.mark.parametrize("seed", [1, 3])
def test_cube_dragged_onto_another_colour_fails(task_env, seed):
    env = task_env(_DragToDistractor())
    assert not run_expert(env, seed)
    sim = env.sim
    assert np.linalg.norm(sim.pos("cube")[:2] - sim.pos("distractor0")[:2]) < 0.03  # it did reach that square


def test_reach_and_drag_needs_the_cube_resting_on_the_target(task_env):
    """Over the target square on the table succeeds; on a distractor, beside the target, or lifted above
    it does not."""
    env = task_env(ReachAndDrag())
    env.reset(seed=0)
    sim = env.sim
    target = sim.pos("target")
    for xy, z, expected in (
        (target[:2], CUBE_HALF, True),
        (target[:2] + [0.04, 0.0], CUBE_HALF, False),
        (target[:2], CUBE_HALF + 0.05, False),
        *((sim.pos(f"distractor{i}")[:2], CUBE_HALF, False) for i in range(3)),
    ):
        sim.place("cube", [xy[0], xy[1], z])
        mujoco.mj_forward(env.model, env.data)
        assert env.task_impl.success(sim) is expected, (xy, z)


class _SweepToOtherPan(SweepToDustpanOfSize):
    """The expert's skill aimed at the pan the instruction does not name."""

    def privileged(self, sim: Sim) -> Privileged:
        other = next(p for p in PANS if p != self._pan)
        body = sim.model.body(f"pan_{other}").id
        into = sim.data.xmat[body].reshape(3, 3)[:, 0]
        return {**super().privileged(sim), "lip_pos": sim.pos(f"pan_{other}"), "into_pan": into}


@pytest.mark.parametrize("seed", [1, 2])
def test_dirt_swept_into_the_other_dustpan_fails(task_env, seed):
    env = task_env(_SweepToOtherPan())
    assert not run_expert(env, seed)
    other = next(p for p in PANS if p != _named_pan(env))
    assert all(env.task_impl.in_pan(env.sim, other))  # it did sweep it all there


def test_sweep_needs_every_piece_of_dirt_in_the_named_pan(task_env):
    """RLBench registers one DetectedCondition per piece: four of five in the pan is not success."""
    env = task_env(SweepToDustpanOfSize())
    env.reset(seed=0)
    sim = env.sim
    rot, lip = _fill_pan(env, _named_pan(env))
    assert env.task_impl.success(sim)
    sim.place("dirt4", lip + rot @ np.array([-0.03, 0.0, DIRT_HALF]))  # one piece short of the lip
    mujoco.mj_forward(env.model, env.data)
    assert sum(env.task_impl.in_pan(sim, _named_pan(env))) == N_DIRT - 1
    assert not env.task_impl.success(sim)


def test_sweep_variations_name_a_pan_and_hold_out_other_words_for_it(task_env):
    """Train: RLBench's two variations (tall, short); test: the same pans called large and small. A held-out
    variation is scored on its pan: all the dirt in the tall pan succeeds for "large", not for "small"."""
    env = task_env(SweepToDustpanOfSize())
    sizes = {split: [v.params["size"] for v in env.variations if v.split == split] for split in ("train", "test")}
    assert sizes == {"train": ["tall", "short"], "test": ["large", "small"]}
    for v in env.variations:
        obs, _ = env.reset(seed=0, options={"variation": v.index})
        assert v.params["size"] in obs["instruction"]
        _fill_pan(env, "tall")
        assert env.task_impl.success(env.sim) is (v.params["size"] in ("tall", "large")), v.params

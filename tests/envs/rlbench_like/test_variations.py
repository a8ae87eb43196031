"""Variations change what they claim to change, instructions say so, and held-out splits are disjoint."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.registry import resolve_tasks
from polyact.envs.rlbench_like import SUITE, TASKS, TEST_TASKS, TRAIN_TASKS
from polyact.envs.rlbench_like.variations import COLOURS, TEST_COLOURS, TRAIN_COLOURS
from polyact.errors import ConfigError, UnknownNameError

_NUMBERS = {2: "two", 3: "three", 4: "four"}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_held_out_variations_are_disjoint_from_train_ones(task):
    variations = TASKS[task]().variations()
    train = [dict(v.params) for v in variations if v.split == "train"]
    test = [dict(v.params) for v in variations if v.split == "test"]
    assert train and test
    assert not [p for p in test if p in train]
    assert [v.index for v in variations] == list(range(len(variations)))
    for v in variations:  # every instruction names what the variation means
        for text in v.instructions:
            for value in v.params.values():
                words = value if isinstance(value, tuple) else (value,)
                assert all(_NUMBERS.get(w, str(w)) in text for w in words), (text, v.params)
    if any("colour" in v.params for v in variations):
        assert {v.params["colour"] for v in variations if v.split == "train"} <= set(TRAIN_COLOURS)


def test_colour_variation_repaints_the_target(env_factory):
    env = env_factory("reach_target")
    target = env.model.geom(env.sim.geoms_of("sphere0")[0]).id
    rgba = {}
    for v in env.variations:
        obs, _ = env.reset(seed=0, options={"variation": v.index})
        rgba[v.params["colour"]] = env.model.geom_rgba[target].copy()
        assert v.params["colour"] in obs["instruction"]
    for colour, value in rgba.items():
        np.testing.assert_allclose(value, COLOURS[colour])
    assert len({tuple(v) for v in rgba.values()}) == len(rgba)


def test_count_variation_changes_the_number_of_active_blocks(env_factory):
    env = env_factory("stack_blocks")
    for v in env.variations:
        if v.params["colour"] != "red":
            continue
        obs, _ = env.reset(seed=0, options={"variation": v.index})
        n = v.params["count"]
        active = [b for b in range(6) if env.sim.active(f"block{b}")]
        assert len(active) == n + 2  # n of the named colour, two distractors
        red = [b for b in active if np.allclose(env.model.geom_rgba[env.sim.geoms_of(f"block{b}")[0]], COLOURS["red"])]
        assert len(red) == n
        hidden = [b for b in range(6) if b not in active]
        assert all(env.sim.pos(f"block{b}")[2] < -0.3 for b in hidden)
        assert {2: "two", 3: "three", 4: "four"}[n] in obs["instruction"]


def test_seeds_move_the_props(env_factory):
    env = env_factory("open_drawer")
    positions = []
    for seed in range(3):
        env.reset(seed=seed, options={"variation": 0})
        positions.append(env.sim.pos("cabinet"))
    assert min(np.linalg.norm(a - b) for i, a in enumerate(positions) for b in positions[i + 1 :]) > 1e-3


def test_drawer_variation_opens_the_named_drawer(env_factory):
    env = env_factory("close_drawer")
    for v in env.variations:
        env.reset(seed=0, options={"variation": v.index})
        openings = {d: env.sim.joint(f"drawer_{d}_joint") for d in ("bottom", "middle", "top")}
        assert max(openings, key=openings.get) == v.params["drawer"]


def test_split_option_and_novel_task_sets(env_factory):
    env = env_factory("push_buttons")
    for seed in range(5):
        env.reset(seed=seed, options={"variation_split": "test"})
        assert env.variation.split == "test"
        assert any(c in TEST_COLOURS for c in env.variation.params["sequence"])
        env.reset(seed=seed)
        assert env.variation.split == "train"
    with pytest.raises(UnknownNameError):
        env.reset(seed=0, options={"variation_split": "validation"})
    with pytest.raises(UnknownNameError):
        env.reset(seed=0, options={"goal_vector": [0, 0, 0]})
    with pytest.raises(ConfigError):
        env.reset(seed=0, options={"variation": 10_000})
    novel = SUITE.make_env("push_buttons", EnvConfig(tasks="RLB12-novel", cameras=["wrist"], height=8, width=8))
    try:
        assert novel.default_split == "test"
        novel.reset(seed=0)
        assert novel.variation.split == "test"
    finally:
        novel.close()


def test_task_sets_resolve_through_the_registry():
    suite, tasks = resolve_tasks("RLB12")
    assert suite.name == "rlbench_like" and tasks == TRAIN_TASKS and len(tasks) == 12
    assert resolve_tasks("RLB-test")[1] == TEST_TASKS
    assert resolve_tasks("RLB12-novel")[1] == TRAIN_TASKS
    assert resolve_tasks("open_drawer") == (suite, ("open_drawer",))

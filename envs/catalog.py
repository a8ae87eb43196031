"""Every name an EnvConfig may use (suites, task sets, tasks, cameras, render qualities) as plain data.

Checking a config or listing tasks must not import a simulator: importing metaworld alone costs
seconds and a GL backend. The suite modules compute the same names from their simulators (metaworld's
benchmark dictionaries, the rlbench_like task classes); tests/envs/test_catalog.py keeps the two equal.
Orders matter: a task set's order is the order of datasets and result tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from polyact.errors import unknown_name

Quality = Literal["fast", "full"]
QUALITIES: tuple[str, ...] = get_args(Quality)


@dataclass(frozen=True)
class SuiteInfo:
    """A suite by name: `module` defines its `SUITE` (polyact.envs.registry.Suite) with the factories.
    `subgoal_oracle`: its keyframe mode can give every observation the expert's next sub-goal
    (env.subgoal_oracle). `goal_vector`: its tasks have a goal vector that env.goal may hand the policy.
    `task_state`: env.task_state can append the props' poses to the state vector."""

    name: str
    module: str
    task_sets: dict[str, tuple[str, ...]]
    tasks: tuple[str, ...]
    cameras: tuple[str, ...]
    subgoal_oracle: bool = False
    goal_vector: bool = True
    task_state: bool = False


# metaworld.env_dict.ALL_V3_ENVIRONMENTS, MT10_V3, ML10_V3 and ML45_V3, in their order.
_MT50 = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3",
    "door-open-v3", "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3", "faucet-open-v3",
    "faucet-close-v3", "hammer-v3", "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3",
    "handle-pull-v3", "lever-pull-v3", "pick-place-wall-v3", "pick-out-of-hole-v3", "pick-place-v3",
    "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3", "plate-slide-back-side-v3",
    "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3", "stick-pull-v3", "push-v3",
    "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3", "shelf-place-v3", "sweep-into-v3", "sweep-v3",
    "window-open-v3", "window-close-v3",
)  # fmt: skip
METAWORLD = SuiteInfo(
    name="metaworld",
    module="polyact.envs.metaworld",
    task_sets={
        "MT10": (
            "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
            "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3",
        ),
        "MT50": _MT50,
        "ML10-train": (
            "reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-close-v3", "button-press-topdown-v3",
            "peg-insert-side-v3", "window-open-v3", "sweep-v3", "basketball-v3",
        ),
        "ML10-test": ("drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3", "lever-pull-v3"),
        "ML45-train": (
            "assembly-v3", "basketball-v3", "button-press-topdown-v3", "button-press-topdown-wall-v3",
            "button-press-v3", "button-press-wall-v3", "coffee-button-v3", "coffee-pull-v3", "coffee-push-v3",
            "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-open-v3", "drawer-close-v3", "drawer-open-v3",
            "faucet-open-v3", "faucet-close-v3", "hammer-v3", "handle-press-side-v3", "handle-press-v3",
            "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3", "pick-place-wall-v3", "pick-out-of-hole-v3",
            "push-back-v3", "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3",
            "plate-slide-back-side-v3", "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3",
            "stick-pull-v3", "push-wall-v3", "push-v3", "reach-wall-v3", "reach-v3", "shelf-place-v3",
            "sweep-into-v3", "sweep-v3", "window-open-v3", "window-close-v3",
        ),
        "ML45-test": ("bin-picking-v3", "box-close-v3", "hand-insert-v3", "door-lock-v3", "door-unlock-v3"),
    },
    tasks=_MT50,
    cameras=("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV", "corner2_lerobot"),
)  # fmt: skip

_RLB_TRAIN = (
    "close_drawer", "close_jar", "insert_onto_square_peg", "meat_off_grill", "open_drawer",
    "place_shape_in_shape_sorter", "put_groceries_in_cupboard", "put_item_in_drawer", "push_buttons",
    "slide_block_to_color_target", "stack_blocks", "turn_tap",
)  # fmt: skip
_RLB_TEST = ("pick_and_lift", "reach_target")
_RLB_PERACT_MORE = (
    "light_bulb_in", "place_cups", "place_wine_at_rack_location", "put_money_in_safe", "reach_and_drag", "stack_cups",
    "sweep_to_dustpan_of_size",
)  # fmt: skip
_RLB_ALL = _RLB_TRAIN + _RLB_TEST + _RLB_PERACT_MORE
_RLB_PERACT18 = tuple(sorted([t for t in _RLB_TRAIN if t != "close_drawer"] + list(_RLB_PERACT_MORE)))
_RLB_SETS = {
    "RLB12": _RLB_TRAIN,
    "RLB-train": _RLB_TRAIN,
    "RLB-test": _RLB_TEST,
    "PerAct18": _RLB_PERACT18,
    "RLB-all": _RLB_ALL,
}
RLBENCH_LIKE = SuiteInfo(
    name="rlbench_like",
    module="polyact.envs.rlbench_like",
    # `-novel` sets hold the same tasks with their held-out variations (see envs/rlbench_like/__init__.py)
    task_sets={**_RLB_SETS, **{f"{name}-novel": tasks for name, tasks in _RLB_SETS.items()}},
    tasks=_RLB_ALL,
    cameras=("front", "left_shoulder", "right_shoulder", "wrist", "overhead"),
    subgoal_oracle=True,
    goal_vector=False,  # every target is visible or named in the instruction
    task_state=True,
)

SUITES: dict[str, SuiteInfo] = {s.name: s for s in (METAWORLD, RLBENCH_LIKE)}


def suite_info(name: str) -> SuiteInfo:
    """The suite called `name`, or an error listing the suites."""
    if name not in SUITES:
        raise unknown_name("suite", name, SUITES)
    return SUITES[name]


def resolve_tasks(name: str) -> tuple[SuiteInfo, tuple[str, ...]]:
    """The suite and tasks of a task-set name (`MT10`) or of a single task (`reach-v3`)."""
    for s in SUITES.values():
        if name in s.task_sets:
            return s, s.task_sets[name]
        if name in s.tasks:
            return s, (name,)
    valid = [n for s in SUITES.values() for n in (*s.task_sets, *s.tasks)]
    raise unknown_name("task or task set (env.tasks)", name, valid)

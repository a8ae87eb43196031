"""rlbench_like: an RLBench-like multi-task suite in MuJoCo (a Panda-like arm, five cameras, variations
with instructions, scripted experts, keyframes). See docs/rlbench_like.md.

Task sets: `RLB12` (= `RLB-train`) the twelve training tasks, `RLB-test` the held-out tasks, `PerAct18`
PerAct's eighteen RLBench tasks (eleven of RLB12 and seven more), `RLB-all` every task; each with train
variations. Adding `-novel` (`RLB12-novel`, `RLB-test-novel`, ...) gives the
same tasks with their held-out (test) variations. envs/catalog.py repeats these names for checking
configs without MuJoCo; tests/envs/test_catalog.py keeps the two equal.
"""

from __future__ import annotations

from polyact.envs.config import EnvConfig
from polyact.envs.registry import Suite
from polyact.envs.rlbench_like.env import SUITE_NAME, RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.keyframe_actions import keyframe_spec, keyframe_transitions
from polyact.envs.rlbench_like.keyframes import annotate
from polyact.envs.rlbench_like.scene import CAMERAS
from polyact.envs.rlbench_like.tasks.base import Task
from polyact.envs.rlbench_like.tasks.close_jar import CloseJar
from polyact.envs.rlbench_like.tasks.cupboard import PutGroceriesInCupboard
from polyact.envs.rlbench_like.tasks.drawers import CloseDrawer, OpenDrawer, PutItemInDrawer
from polyact.envs.rlbench_like.tasks.light_bulb_in import LightBulbIn
from polyact.envs.rlbench_like.tasks.meat_off_grill import MeatOffGrill
from polyact.envs.rlbench_like.tasks.pick_and_lift import PickAndLift
from polyact.envs.rlbench_like.tasks.place_cups import PlaceCups
from polyact.envs.rlbench_like.tasks.push_buttons import PushButtons
from polyact.envs.rlbench_like.tasks.put_money_in_safe import PutMoneyInSafe
from polyact.envs.rlbench_like.tasks.reach_and_drag import ReachAndDrag
from polyact.envs.rlbench_like.tasks.reach_target import ReachTarget
from polyact.envs.rlbench_like.tasks.shape_sorter import PlaceShapeInShapeSorter
from polyact.envs.rlbench_like.tasks.slide_block import SlideBlockToColorTarget
from polyact.envs.rlbench_like.tasks.square_peg import InsertOntoSquarePeg
from polyact.envs.rlbench_like.tasks.stack_blocks import StackBlocks
from polyact.envs.rlbench_like.tasks.stack_cups import StackCups
from polyact.envs.rlbench_like.tasks.sweep_to_dustpan import SweepToDustpanOfSize
from polyact.envs.rlbench_like.tasks.turn_tap import TurnTap
from polyact.envs.rlbench_like.tasks.wine_rack import PlaceWineAtRackLocation
from polyact.errors import unknown_name

_TRAIN: tuple[type[Task], ...] = (
    CloseDrawer,
    CloseJar,
    InsertOntoSquarePeg,
    MeatOffGrill,
    OpenDrawer,
    PlaceShapeInShapeSorter,
    PutGroceriesInCupboard,
    PutItemInDrawer,
    PushButtons,
    SlideBlockToColorTarget,
    StackBlocks,
    TurnTap,
)
_HELD_OUT: tuple[type[Task], ...] = (PickAndLift, ReachTarget)
# PerAct's other seven tasks: with RLB12's eleven PerAct tasks (all but close_drawer) PerAct's eighteen
_PERACT_MORE: tuple[type[Task], ...] = (
    LightBulbIn,
    PlaceCups,
    PlaceWineAtRackLocation,
    PutMoneyInSafe,
    ReachAndDrag,
    StackCups,
    SweepToDustpanOfSize,
)
TASKS: dict[str, type[Task]] = {t.name: t for t in _TRAIN + _HELD_OUT + _PERACT_MORE}
TRAIN_TASKS = tuple(t.name for t in _TRAIN)
TEST_TASKS = tuple(t.name for t in _HELD_OUT)
PERACT_TASKS = tuple(sorted([t for t in TRAIN_TASKS if t != "close_drawer"] + [t.name for t in _PERACT_MORE]))
NOVEL_SUFFIX = "-novel"

_BASE_SETS = {
    "RLB12": TRAIN_TASKS,
    "RLB-train": TRAIN_TASKS,
    "RLB-test": TEST_TASKS,
    "PerAct18": PERACT_TASKS,
    "RLB-all": tuple(TASKS),
}
TASK_SETS = {**_BASE_SETS, **{name + NOVEL_SUFFIX: tasks for name, tasks in _BASE_SETS.items()}}


def make_env(task: str, cfg: EnvConfig) -> RLBenchLikeEnv:
    """An env for `task`; its variations come from the test split when `cfg.tasks` names a `-novel` set."""
    if task not in TASKS:
        raise unknown_name("rlbench_like task", task, TASKS)
    split = "test" if cfg.tasks.endswith(NOVEL_SUFFIX) and cfg.tasks in TASK_SETS else "train"
    return RLBenchLikeEnv(TASKS[task](), cfg, default_split=split)


def make_expert(env: RLBenchLikeEnv) -> ScriptedExpert:
    return ScriptedExpert(env)


SUITE = Suite(
    name=SUITE_NAME,
    task_sets=TASK_SETS,
    tasks=tuple(TASKS),
    make_env=make_env,
    make_expert=make_expert,
    cameras=CAMERAS,
    annotate=annotate,
    keyframe_transitions=keyframe_transitions,
    keyframe_spec=keyframe_spec,
)

"""The static catalog of names: equal to what the suites compute, and checked without a simulator."""

from __future__ import annotations

import subprocess
import sys

import pytest

from polyact.envs.catalog import QUALITIES, SUITES, resolve_tasks, suite_info
from polyact.envs.config import EnvConfig
from polyact.envs.registry import suite
from polyact.errors import UnknownNameError

SIMULATORS = ("mujoco", "metaworld", "gymnasium", "torch")


@pytest.mark.parametrize("name", list(SUITES))
def test_catalog_equals_what_the_suite_computes(name):
    info, computed = SUITES[name], suite(name)
    assert computed.name == info.name
    assert computed.tasks == info.tasks
    assert computed.task_sets == info.task_sets
    assert list(computed.task_sets) == list(info.task_sets)  # the order `polyact tasks` prints
    assert computed.cameras == info.cameras


def test_resolve_tasks_names_sets_and_single_tasks():
    info, tasks = resolve_tasks("MT10")
    assert info is SUITES["metaworld"] and len(tasks) == 10
    assert resolve_tasks("open_drawer") == (SUITES["rlbench_like"], ("open_drawer",))
    with pytest.raises(UnknownNameError, match="closest first: rlbench_like"):
        suite_info("rlbench")


def test_config_checks_names_without_loading_a_simulator():
    code = (
        "import sys\n"
        "from polyact.envs import EnvConfig, resolve_tasks\n"
        "EnvConfig(tasks='RLB12', cameras=['wrist'], render_quality='full')\n"
        "try:\n"
        "    EnvConfig(tasks='MT10', cameras=['cornr'])\n"
        "except KeyError as err:\n"
        "    print('error:', err)\n"
        f"print('loaded:', [m for m in {SIMULATORS!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "error: unknown metaworld camera (env.cameras) 'cornr'; valid choices, closest first: corner" in out
    assert "loaded: []" in out


def test_render_qualities_are_checked_by_the_config():
    assert QUALITIES == ("fast", "full")
    with pytest.raises(UnknownNameError, match="closest first: full"):
        EnvConfig(render_quality="ful")

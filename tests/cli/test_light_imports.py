"""Help and task listings answer without loading a simulator (or torch, where nothing needs it).

Each command runs in a fresh interpreter, so modules imported by other tests cannot hide a heavy import.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SIMULATORS = ("mujoco", "metaworld")
HEAVY = (*SIMULATORS, "gymnasium", "torch")


def loaded_by(argv: list[str]) -> set[str]:
    """The heavy modules in sys.modules after `polyact.cli.main(argv)` ran in a fresh interpreter."""
    code = (
        "import contextlib, io, sys\n"
        "from polyact.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as shown:\n"
        f"    rc = main({argv!r})\n"
        "assert rc == 0 and shown.getvalue().strip(), (rc, shown.getvalue())\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


@pytest.mark.parametrize("argv", [["collect", "--help"], ["tasks"], ["tasks", "RLB12-novel"]])
def test_collect_help_and_tasks_load_no_simulator_and_no_torch(argv):
    assert not loaded_by(argv) & {*SIMULATORS, "torch"}


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(
            ["eval", "--help"],
            marks=pytest.mark.xfail(
                strict=True,
                reason="eval/__init__.py imports eval.run -> eval.worker -> envs.multitask -> envs.base -> mujoco",
            ),
        ),
        ["train", "--help"],
    ],
)
def test_eval_and_train_help_load_no_simulator(argv):
    assert not loaded_by(argv) & set(SIMULATORS)

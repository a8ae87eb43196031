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


@pytest.mark.parametrize("argv", [["tasks", "RLB12-novel"], ["ros", "--help"], ["ros sim", "--help"]])
def test_task_listings_and_robot_help_load_no_simulator_and_no_torch(argv):
    assert not loaded_by(argv[0].split() + argv[1:]) & {*SIMULATORS, "torch"}


@pytest.mark.parametrize(
    "argv", [["collect", "--help"], ["tasks"], ["eval", "--help"], ["train", "--help"], ["serve", "--help"]]
)
def test_help_loads_no_simulator_and_no_torch(argv):
    assert not loaded_by(argv) & {*SIMULATORS, "torch"}

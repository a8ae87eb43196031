"""The robot side stays light: `polyact ros` against a server imports neither torch nor a simulator, and
nothing in deploy imports training or evaluation code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import polyact.deploy

HEAVY = ("torch", "mujoco", "metaworld", "gymnasium", "matplotlib", "tensorboard")
ROBOT_MODULES = (
    "polyact.contract",
    "polyact.policies.config",
    "polyact.deploy.client",
    "polyact.deploy.config",
    "polyact.deploy.protocol",
    "polyact.deploy.safety",
    "polyact.deploy.ros.core",
    "polyact.deploy.ros.messages",
    "polyact.deploy.ros.ros1",
    "polyact.deploy.ros.ros2",
    "polyact.deploy.ros.node",
)

# Runs in a fresh interpreter where the refused packages cannot be imported, as if not installed.
REFUSING = """
import importlib, importlib.abc, json, sys

refused = tuple(sys.argv[1].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in refused or name.startswith(tuple(r + "." for r in refused)):
            raise ImportError(f"{name} is not installed here")

sys.meta_path.insert(0, Refuse())
"""

ROBOT = (
    REFUSING
    + """
for module in sys.argv[2].split(","):
    importlib.import_module(module)
from polyact.cli import main
from polyact.deploy.config import BridgeConfig, SimRobotConfig

assert main(["ros", "--help"]) == 0
BridgeConfig(policy="ws://gpu-box:8765")
SimRobotConfig()  # the simulated robot's config checks its task without the simulator
print(json.dumps(sorted({m.partition(".")[0] for m in sys.modules} & set(refused))))
"""
)


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)


def test_the_robot_side_imports_no_torch_and_no_simulator():
    result = run(ROBOT, ",".join(HEAVY), ",".join(ROBOT_MODULES))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
    assert "polyact ros: the ROS bridge" in result.stdout


def test_deploy_never_imports_training_or_evaluation_code():
    """Read from the source, lazy imports included; the run-time check is in the next test."""
    root = Path(polyact.deploy.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(("polyact.train", "polyact.eval"))]
    assert offenders == []


SERVE = (
    REFUSING
    + """
from polyact.deploy.policy import load_served_policy
from polyact.deploy.server import PolicyServer
from polyact.deploy.config import ServeConfig

policy = load_served_policy(sys.argv[2])
policy.warm_up()
PolicyServer(policy, ServeConfig(port=0))
print(json.dumps(sorted(m for m in sys.modules if m.startswith(refused))))
"""
)


def test_serving_a_checkpoint_runs_without_training_or_evaluation_code(checkpoint):
    result = run(SERVE, "polyact.train,polyact.eval", checkpoint[0])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []

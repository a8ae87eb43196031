"""Starting Ray on a busy machine (runners.py): a start that misses one of Ray's fixed windows is cleaned
up and tried again, a start that keeps failing ends in one line saying what to try, and an address
where nothing listens is refused at once instead of after minutes of Ray's own retries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from polyact.errors import PolyactError
from polyact.runners import connect_ray, start_ray

# as in tests/eval/test_ray_runner.py: the cluster stays on loopback, without token authentication
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}

# Slows the first dashboard agent a cluster starts by 60 s, past the 15 s the raylet waits for its port
# file (what a saturated machine did to the tests' clusters); later agents start at their own pace.
SLOW_FIRST_AGENT = """
import os, sys, time
marker = os.path.join(os.path.dirname(__file__), "agent_slowed")
if any(a.endswith("dashboard/agent.py") for a in sys.argv) and not os.path.exists(marker):
    open(marker, "w").close()
    time.sleep(60)
"""


def test_a_failed_start_leaves_nothing_behind_and_is_tried_again(capsys):
    children: list[subprocess.Popen] = []

    def start() -> str:
        children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]))
        if len(children) == 1:
            raise RuntimeError("The current node timed out during startup.\nmore detail")
        return "up"

    assert start_ray(start, "a test cluster") == "up"
    assert children[0].wait() == -signal.SIGKILL  # what the failed try started was stopped
    assert children[1].poll() is None  # what the good one started runs on
    children[1].kill()
    children[1].wait()
    assert capsys.readouterr().err.strip() == (
        "a test cluster did not start (attempt 1 of 3: RuntimeError: The current node timed out during startup.); "
        "trying again"
    )


def test_a_start_that_keeps_failing_says_what_to_try_in_one_line():
    def start() -> None:
        raise TimeoutError("Timed out after 30 seconds while waiting for node to startup.")

    with pytest.raises(PolyactError) as err:
        start_ray(start, "a local Ray cluster", attempts=2)
    [line] = str(err.value).splitlines()
    assert line.startswith("a local Ray cluster did not start in 2 attempts (last: TimeoutError: Timed out after 30")
    assert "raylet.out" in line and "ray start --head" in line and "ray_address=auto" in line


def test_an_address_where_nothing_listens_is_refused_at_once():
    with pytest.raises(PolyactError, match=r"nothing answers at ray_address=127.0.0.1:1 \(ConnectionRefusedError"):
        connect_ray("127.0.0.1:1")


@pytest.mark.slow
def test_a_local_cluster_whose_agent_misses_rays_window_is_started_again(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(SLOW_FIRST_AGENT)
    code = (
        "import ray\n"
        "from polyact.runners import connect_ray\n"
        "connect_ray('', num_cpus=1)\n"
        "print(ray.get(ray.remote(lambda: 41).remote()) + 1)\n"
    )
    env = os.environ | LOOPBACK | {"PYTHONPATH": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert (tmp_path / "agent_slowed").exists()  # the first agent was slowed, so the first start failed
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[-1] == "42"
    assert "a local Ray cluster did not start (attempt 1 of 3: Exception: The current node timed out" in run.stderr

"""`runner=ray` losing a node mid-run, on Ray's own test cluster (`ray.cluster_utils.Cluster`): a head and a
second node, each a real raylet with one CPU on 127.0.0.1. The driver is a `polyact eval` process; the
test removes the second node (all its processes: raylet, workers) while an episode runs there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Ray's settings for a loopback cluster, read when ray is imported (tests/eval/test_ray_runner.py)
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
os.environ.update(LOOPBACK)
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from polyact.eval.store import EPISODES_FILE  # noqa: E402
from polyact.runners import LOCAL_SYSTEM_CONFIG, start_ray  # noqa: E402

pytestmark = pytest.mark.slow

EPISODES = 3  # per task, of the small configuration (tests/eval/conftest.py)


def episodes(run_dir) -> dict[tuple[str, int], dict]:
    lines = Path(run_dir, EPISODES_FILE).read_text().splitlines()
    return {(d["task"], d["index"]): d for d in map(json.loads, lines)}


@pytest.fixture
def two_nodes():
    """(cluster, second node): a head and one more node of one CPU each, so that a run of 2 workers
    puts one on each; each start retried as polyact's own are (runners.py)."""
    assert not ray._private.ray_constants.ENABLE_RAY_CLUSTER, "ray was imported before this module set LOOPBACK"
    args = dict(num_cpus=1, include_dashboard=False, _system_config=LOCAL_SYSTEM_CONFIG)
    cluster = start_ray(lambda: Cluster(initialize_head=True, head_node_args=args), "Ray's test cluster")
    try:
        second = start_ray(lambda: cluster.add_node(num_cpus=1), "its second node")
        ray.init(address=cluster.address)  # this process only looks: where the actors run
        yield cluster, second
    finally:
        ray.shutdown()
        cluster.shutdown()


def workers_on(node) -> list[dict]:
    return [
        a
        for a in ray._private.state.actors(actor_state_name="ALIVE").values()
        if a["ActorClassName"] == "EpisodeWorker" and a["Address"]["NodeID"] == node.node_id
    ]


def test_a_lost_node_s_episode_is_retried_and_every_episode_counts_once(two_nodes, reference_run, tmp_path):
    cluster, second = two_nodes
    out, log = tmp_path / "run", tmp_path / "driver.log"
    cmd = [
        sys.executable, "-m", "polyact.cli", "eval", "env.tasks=MT10", "env.height=32", "env.width=32",
        "env.max_episode_steps=60", "only_tasks=[reach-v3,push-v3]", f"episodes_per_task={EPISODES}", "workers=2",
        f"out={out}", "videos=false", "runner=ray", f"ray_address={cluster.address}",
    ]  # fmt: skip
    with open(log, "w") as f:
        driver = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    try:
        # progress, not time: each worker's first episode is queued on it from the start, so once the
        # second node's worker is alive it runs that episode, however long its start took under load
        while driver.poll() is None and not workers_on(second):
            time.sleep(0.02)
        assert driver.poll() is None, log.read_text()
        assert len(workers_on(second)) == 1, log.read_text()
        cluster.remove_node(second)  # its raylet and every worker process on it
        assert driver.wait() == 0, log.read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
    data = json.loads((out / "results.json").read_text())
    [lost] = data["episodes_retried"]  # the one episode that ran on the lost node
    assert lost["attempt"] == 1 and "lost" in lost["reason"], data["episodes_retried"]
    assert f"retried {lost['task']} episode {lost['index']} (attempt 2)" in log.read_text()
    assert data["workers_restarted"] == 1 and data["episodes_run"] == 2 * EPISODES
    lines = (out / EPISODES_FILE).read_text().splitlines()
    assert len(lines) == 2 * EPISODES  # every episode once, none counted twice
    ref_cfg, _ = reference_run
    reference = episodes(ref_cfg.out_dir)
    assert episodes(out) == {k: reference[k] for k in episodes(out)}  # the same outcomes as the local runner

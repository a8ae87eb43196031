"""`polyact eval runner=ray` on a real local Ray cluster (2 CPUs, loopback), started once for the module.

The same episodes as the local runner; a worker process killed mid-run; the driver killed and rerun.
The drivers of the kill tests are `polyact eval` subprocesses that join the module's cluster.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from polyact.collect import CollectConfig, collect
from polyact.data import EpisodeDataset
from polyact.deploy.client import PolicyClient
from polyact.envs.config import EnvConfig
from polyact.errors import ConfigError, PolyactError
from polyact.eval.episodes import plan_jobs
from polyact.eval.ray_progress import RayProgress
from polyact.eval.ray_runner import Retry, roll_out_on_ray
from polyact.eval.run import evaluate, served_policy
from polyact.eval.store import EPISODES_FILE, EpisodeResult
from polyact.faults import ENV as FAULT_ENV
from polyact.runners import connect_ray

# Ray puts a node on the machine's network address, even for 127.0.0.1, unless told there is no cluster
# beyond this machine (read when ray is imported): so the test cluster and its drivers stay on loopback,
# where its token authentication (on by default from Ray 2.5x) has nothing to guard.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
os.environ.update(LOOPBACK)
import ray  # noqa: E402

pytestmark = pytest.mark.slow

NUMBERS = ("per_task", "mean_success", "overall", "groups")
EPISODES = 3  # per task: reach-v3 succeeds in each, push-v3 in its third (tests/eval/conftest.py)


def episodes(run_dir) -> dict[tuple[str, int], dict]:
    lines = Path(run_dir, EPISODES_FILE).read_text().splitlines()
    return {(d["task"], d["index"]): d for d in map(json.loads, lines)}


@pytest.fixture(scope="module")
def local_run(make_config, tmp_path_factory):
    """The small configuration of tests/eval/conftest.py, 3 episodes per task, run by the local runner."""
    cfg = make_config(tmp_path_factory.mktemp("local"), episodes_per_task=EPISODES)
    return cfg, evaluate(cfg)


@pytest.fixture(scope="module")
def cluster():
    """The address of a 2-CPU Ray cluster on 127.0.0.1 that this process starts (and stops at the end);
    the kill tests' drivers join it from their own processes."""
    assert not ray._private.ray_constants.ENABLE_RAY_CLUSTER, "ray was imported before this module set LOOPBACK"
    connect_ray("", num_cpus=2)  # polyact's own start: retried if a busy machine makes Ray miss a window
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def command(out, address: str, *extra: str) -> list[str]:
    """The small configuration of tests/eval/conftest.py as a `polyact eval` command on the cluster."""
    return [
        sys.executable,
        "-m",
        "polyact.cli",
        "eval",
        "env.tasks=MT10",
        "env.height=32",
        "env.width=32",
        "env.max_episode_steps=60",
        "only_tasks=[reach-v3,push-v3]",
        f"episodes_per_task={EPISODES}",
        "workers=2",
        f"out={out}",
        "runner=ray",
        f"ray_address={address}",
        *extra,
    ]


def test_ray_gives_the_local_runners_episodes(cluster, local_run, make_config, tmp_path):
    ref_cfg, ref = local_run
    cfg = make_config(tmp_path / "ray", episodes_per_task=EPISODES, runner="ray", ray_address=cluster)
    data = evaluate(cfg)
    assert data["runner"] == "ray" and data["episodes_run"] == 2 * EPISODES
    assert episodes(cfg.out_dir) == episodes(ref_cfg.out_dir)  # success, length, instruction, seed
    assert {k: data[k] for k in NUMBERS} == {k: ref[k] for k in NUMBERS}
    assert data["videos"] == ref["videos"]  # the same first success and failure of each task
    assert data["episodes_retried"] == [] and data["workers_restarted"] == 0


def test_ray_with_a_served_policy_gives_the_checkpoints_episodes(
    cluster, policy_server, checkpoint_run, make_config, tmp_path
):
    """policy=ws://... on Ray: each actor's slot asks the server (in this process) for its chunks."""
    ref_cfg, ref = checkpoint_run
    with PolicyClient(policy_server.url) as client:
        before = client.health()["requests"].get("infer", 0)
        cfg = make_config(tmp_path / "served", policy=policy_server.url, episodes_per_task=2, runner="ray",
                          ray_address=cluster)  # fmt: skip
        data = evaluate(cfg)
        answered = client.health()["requests"].get("infer", 0) - before
    assert data["runner"] == "ray" and data["served_policy"] == ref_cfg.policy
    assert episodes(cfg.out_dir) == episodes(ref_cfg.out_dir)
    assert {k: data[k] for k in NUMBERS} == {k: ref[k] for k in NUMBERS} and data["videos"] == ref["videos"]
    # one chunk per 2 steps of every episode, all from the server (chunk 4, re-planned every 2 steps)
    assert answered == sum(math.ceil(e["length"] / 2) for e in episodes(cfg.out_dir).values())


def test_a_worker_that_cannot_start_stops_the_run_at_once_in_one_line(cluster, make_config, tmp_path):
    """A worker whose start raises (here: the policy server is out of its reach) is not retried as if lost."""
    cfg = make_config(tmp_path, runner="ray", ray_address=cluster, workers=1, episodes_per_task=1)
    jobs = plan_jobs(cfg.tasks, 1, cfg.protocol, cfg.goal_seed, set())
    unreachable = partial(served_policy, "ws://127.0.0.1:1", 1)
    with pytest.raises(PolyactError) as err:
        roll_out_on_ray(cfg, jobs, lambda r, f: None, lambda job: False, make_policy=unreachable)
    [line] = str(err.value).splitlines()
    assert (
        line.startswith("worker 0 could not start: ") and "ConfigError: policy=ws://127.0.0.1:1: cannot reach" in line
    )
    assert "reachable from it (`polyact serve host=0.0.0.0`)" in line


def test_a_killed_worker_is_replaced_and_every_episode_counts_once(cluster, local_run, tmp_path):
    ref_cfg, _ = local_run
    out = tmp_path / "worker_killed"
    log = tmp_path / "driver.log"
    with open(log, "w") as f:
        driver = subprocess.Popen(command(out, cluster, "videos=false"), stdout=f, stderr=subprocess.STDOUT)
    try:
        jsonl = out / EPISODES_FILE
        # progress, not time: once an episode is recorded both workers are up and busy with the next ones
        while driver.poll() is None and not (jsonl.exists() and jsonl.read_bytes().count(b"\n") >= 1):
            time.sleep(0.2)  # yield the CPUs to the cluster between two looks
        assert driver.poll() is None, log.read_text()
        [victim, *_] = [
            a
            for a in ray._private.state.actors(actor_state_name="ALIVE").values()
            if a["ActorClassName"] == "EpisodeWorker"
        ]
        os.kill(victim["Pid"], signal.SIGKILL)
        assert driver.wait() == 0, log.read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
    data = json.loads((out / "results.json").read_text())
    assert data["workers_restarted"] == 1, log.read_text()
    # the episode the victim was running (or was handed next, had the kill landed between two) ran again
    [lost] = data["episodes_retried"]
    assert lost["attempt"] == 1 and "lost" in lost["reason"]
    assert f"retried {lost['task']} episode {lost['index']} (attempt 2)" in log.read_text()
    lines = (out / EPISODES_FILE).read_text().splitlines()
    assert len(lines) == 2 * EPISODES  # every episode once, none counted twice
    assert episodes(out) == episodes(ref_cfg.out_dir)


def test_a_killed_driver_resumes_without_rerunning_finished_episodes(cluster, local_run, tmp_path):
    ref_cfg, ref = local_run
    out = tmp_path / "driver_killed"
    cmd = command(out, cluster, "progress=false")
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV} | {FAULT_ENV: "eval.episode_recorded:2"}
    killed = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    before = (out / EPISODES_FILE).read_bytes()
    assert before.count(b"\n") == 2

    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    data = json.loads((out / "results.json").read_text())
    assert data["episodes_resumed"] == 2 and data["episodes_run"] == 4  # the finished ones were not run again
    after = (out / EPISODES_FILE).read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 2 * EPISODES
    assert episodes(out) == episodes(ref_cfg.out_dir)
    assert {k: data[k] for k in NUMBERS} == {k: ref[k] for k in NUMBERS}


def test_collect_on_ray_records_what_the_local_pool_records(cluster, tmp_path):
    def demonstrations(**runner) -> list[tuple]:
        cfg = CollectConfig(
            out=str(tmp_path / (runner.get("runner") or "local")),
            env=EnvConfig(tasks="reach-v3", height=24, width=24),
            episodes_per_task=2,
            workers=2,
            progress=False,
            **runner,
        )
        collect(cfg)
        with EpisodeDataset(cfg.out) as ds:
            return [
                (e.task, e.seed, e.success, ds.load_episode(i).actions.tobytes()) for i, e in enumerate(ds.episodes)
            ]

    on_ray = demonstrations(runner="ray", ray_address=cluster)
    assert [e[:3] for e in on_ray] == [("reach-v3", 0, True), ("reach-v3", 1, True)]
    assert on_ray == demonstrations()


def test_runner_ray_without_ray_says_in_one_line_how_to_install_it(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if it were not installed: `import ray` raises ImportError\n"
        "from polyact.cli import main\n"
        f"sys.exit(main(['eval', 'env.tasks=reach-v3', 'runner=ray', 'out={tmp_path}']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].endswith("runner=ray needs Ray: pip install 'polyact[ray]'")
    assert not (tmp_path / EPISODES_FILE).exists()  # refused before anything ran


def test_help_does_not_import_ray():
    code = "import sys\nfrom polyact.cli import main\nmain(['eval', '--help'])\nprint('ray' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "False", out.stderr


def test_bad_runner_settings_are_refused(tmp_path, make_config):
    with pytest.raises(ConfigError, match="runner"):
        make_config(tmp_path, runner="slurm")
    with pytest.raises(ConfigError, match="runner=ray"):
        make_config(tmp_path, ray_address="127.0.0.1:6379")
    with pytest.raises(ConfigError, match="ray_retries"):
        make_config(tmp_path, runner="ray", ray_retries=-1)


def test_progress_view_counts_tasks_successes_and_retries():
    done = [EpisodeResult("reach-v3", 0, 1000000, True, 40, "reach")]
    view = RayProgress("eval MT10", ["reach-v3", "push-v3", "pick-place-v3"], 2, done, stream=io.StringIO())
    view.started(2)
    view.finished(EpisodeResult("push-v3", 0, 1000000, False, 60, "push"))
    view.retried(Retry("push-v3", 1, 1, "worker 1 lost (ActorDiedError)"))
    header, *rows = view.lines()
    assert header.startswith("eval MT10 | 2/6 episodes | success 1/2 (50%) | 2 workers | 1 retried")
    assert rows[0].split() == ["reach-v3", "1/2", "success", "1/1", "(100%)"]
    assert rows[1].split() == ["push-v3", "1/2", "success", "0/1", "(0%)"]
    assert rows[2].strip() == "0 task(s) finished, 1 not started"
    assert rows[3].strip() == "retried push-v3 episode 1 (attempt 2): worker 1 lost (ActorDiedError)"
    assert "retried push-v3 episode 1" in view.stream.getvalue()  # not a terminal: one line per retry

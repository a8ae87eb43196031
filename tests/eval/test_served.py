"""`polyact eval policy=ws://HOST:PORT`: the episodes' actions come from a running policy server.

The server is `polyact serve`'s, in a thread of the test process on 127.0.0.1, serving a checkpoint the
test makes; the evaluation is a `polyact eval` process (the local runner) whose episodes must be those
of `policy=<the checkpoint>` in this process, for the same seeds. runner=ray is tested beside the other
Ray tests (tests/eval/test_ray_runner.py), on their cluster.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from polyact.deploy.client import PolicyClient
from polyact.errors import ConfigError
from polyact.eval.run import evaluate, policy_for_eval
from polyact.eval.store import EPISODES_FILE
from polyact.runs import RUN_FILE

pytestmark = pytest.mark.slow

NUMBERS = ("per_task", "mean_success", "overall", "groups")


def episodes(run_dir) -> dict[tuple[str, int], dict]:
    lines = Path(run_dir, EPISODES_FILE).read_text().splitlines()
    return {(d["task"], d["index"]): d for d in map(json.loads, lines)}


def chunk_requests(url: str) -> int:
    """The inference requests the server has answered so far."""
    with PolicyClient(url) as client:
        return int(client.health()["requests"].get("infer", 0))


def expected_requests(run_dir: Path, replan_every: int = 2) -> int:
    """One chunk request per `replan_every` steps of every episode (receding horizon)."""
    return sum(math.ceil(e["length"] / replan_every) for e in episodes(run_dir).values())


def frames(video: Path) -> np.ndarray:
    return np.stack(list(iio.imiter(video, plugin="FFMPEG"))).astype(np.float32)  # (T, H, W, 3)


def same_run(served_dir: Path, data: dict, reference) -> None:
    """The served run has the reference's episodes, numbers and videos (the same trajectories)."""
    ref_cfg, ref = reference
    assert episodes(served_dir) == episodes(ref_cfg.out_dir)  # success, length, seed, instruction
    assert {k: data[k] for k in NUMBERS} == {k: ref[k] for k in NUMBERS}
    assert data["videos"] == ref["videos"] and len(data["videos"]) >= 2
    for name in data["videos"]:
        served, local = frames(served_dir / "videos" / name), frames(ref_cfg.out_dir / "videos" / name)
        assert served.shape == local.shape
        assert np.abs(served - local).mean() < 0.5, name  # the arm moved the same way


def test_polyact_eval_of_a_served_policy_gives_the_checkpoints_episodes(policy_server, checkpoint_run, tmp_path):
    url, out = policy_server.url, tmp_path / "served"
    before = chunk_requests(url)
    code = (
        "import sys\n"
        "from polyact.cli import main\n"
        "rc = main(['eval', 'policy=" + url + "', 'env.tasks=MT10', 'env.height=32', 'env.width=32',\n"
        "           'env.max_episode_steps=60', 'only_tasks=[reach-v3,push-v3]', 'episodes_per_task=2',\n"
        f"           'workers=2', 'progress=false', 'out={out}'])\n"
        "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n"
        "sys.exit(rc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "no torch"  # the policy ran in the server, not here

    data = json.loads((out / "results.json").read_text())
    same_run(out, data, checkpoint_run)
    assert chunk_requests(url) - before == expected_requests(out)  # every action came from the server
    assert data["policy"] == url and data["served_policy"] == checkpoint_run[0].policy
    assert f"served by `polyact serve` at {url}: `{checkpoint_run[0].policy}`" in (out / "results.md").read_text()
    identity = json.loads((out / RUN_FILE).read_text())
    assert (
        identity["policy"] == url and identity["served_policy"] == checkpoint_run[0].policy and "device" not in identity
    )


def test_a_served_run_resumes_under_its_url_only(policy_server, make_config, tmp_path):
    cfg = make_config(tmp_path / "run", policy=policy_server.url, only_tasks=["reach-v3"], episodes_per_task=1)
    first = evaluate(cfg)
    assert first["episodes_run"] == 1
    again = evaluate(cfg)
    assert again["episodes_run"] == 0 and again["episodes_resumed"] == 1
    other = make_config(
        tmp_path / "run", policy=f"ws://localhost:{policy_server.port}", only_tasks=["reach-v3"], episodes_per_task=1
    )
    with pytest.raises(ConfigError, match="other settings"):
        evaluate(other)  # the same server under another name: another identity, refused rather than mixed


def test_the_served_policy_declares_what_the_checkpoint_needs(policy_server, small_checkpoint, make_config, tmp_path):
    served = policy_for_eval(make_config(tmp_path, policy=policy_server.url), 2)
    try:
        assert served.requirements == policy_for_eval(make_config(tmp_path, policy=small_checkpoint), 2).requirements
    finally:
        served.close()


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ("ws://127.0.0.1:1", "policy=ws://127.0.0.1:1: cannot reach the policy server at ws://127.0.0.1:1"),
        ("http://127.0.0.1:8765", "is not a policy server URL (the scheme is 'http', not ws or wss)"),
        ("ws://127.0.0.1", "is not a policy server URL (it names no host and port)"),
    ],
)
def test_a_bad_or_unreachable_url_is_one_line_saying_what_is_wrong(policy, says, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "polyact.cli", "eval", f"policy={policy}", "env.tasks=reach-v3", f"out={tmp_path}/x"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("polyact eval: error: ") and says in line, line
    assert not (tmp_path / "x").exists()


def test_execution_modes_a_server_cannot_honour_are_refused(make_config, tmp_path):
    with pytest.raises(ConfigError, match="receding-horizon"):
        make_config(tmp_path, policy="ws://127.0.0.1:8765", execution="temporal_ensemble")

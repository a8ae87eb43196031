"""Whole `polyact eval` runs on real environments: repeatable numbers, videos, resuming after a kill,
comparing runs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from polyact.eval.compare import CompareConfig, compare
from polyact.eval.run import evaluate
from polyact.eval.store import EPISODES_FILE
from polyact.faults import ENV as FAULT_ENV

pytestmark = pytest.mark.slow


def episodes(run_dir) -> dict[tuple[str, int], dict]:
    lines = Path(run_dir, EPISODES_FILE).read_text().splitlines()
    return {(d["task"], d["index"]): d for d in map(json.loads, lines)}


NUMBERS = ("per_task", "mean_success", "overall", "groups")


def test_expert_results_cover_every_episode(reference_run):
    cfg, data = reference_run
    assert data["episodes_run"] == 8 and data["episodes_resumed"] == 0
    assert set(data["per_task"]) == {"reach-v3", "push-v3"}
    reach, push = data["per_task"]["reach-v3"], data["per_task"]["push-v3"]
    assert (reach["successes"], reach["episodes"]) == (4, 4)
    assert (push["successes"], push["episodes"]) == (1, 4)  # only seed 1000002 succeeds within 60 steps
    assert data["overall"]["successes"] == 5 and data["mean_success"] == pytest.approx(0.625)
    assert sorted(episodes(cfg.out_dir)) == [(t, i) for t in ("push-v3", "reach-v3") for i in range(4)]
    for name in ("results.json", "results.md", "results.png"):
        assert (cfg.out_dir / name).stat().st_size > 0
    md = (cfg.out_dir / "results.md").read_text()
    assert "| reach-v3 | 100.0% | [51.0, 100.0] | 4/4 |" in md and "| **mean** | **62.5%** |" in md


def test_the_same_command_gives_the_same_numbers_with_another_worker_count(reference_run, tmp_path, make_config):
    ref_cfg, ref = reference_run
    cfg = make_config(tmp_path / "one-worker", workers=1, videos=False)
    data = evaluate(cfg)
    assert episodes(cfg.out_dir) == episodes(ref_cfg.out_dir)
    assert {k: data[k] for k in NUMBERS} == {k: ref[k] for k in NUMBERS}
    table = compare(CompareConfig(runs=[str(ref_cfg.out_dir), str(cfg.out_dir)], out=str(tmp_path / "cmp")))
    assert ref_cfg.out_dir.name in table and "one-worker" in table
    assert "| reach-v3 | 100.0% [51.0, 100.0] | 100.0% [51.0, 100.0] |" in table
    assert "| **mean** | **62.5%**" in table
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_videos_are_the_first_success_and_failure_of_each_task(reference_run):
    import imageio.v3 as iio

    cfg, data = reference_run
    videos = sorted(p.name for p in (cfg.out_dir / "videos").iterdir())
    assert [v.split("_")[:3] for v in videos] == [
        ["push-v3", "ep0000", "failure"],
        ["push-v3", "ep0002", "success"],
        ["reach-v3", "ep0000", "success"],
    ]
    assert data["videos"] == videos and data["videos_missing"] == []
    record = episodes(cfg.out_dir)[("push-v3", 2)]
    slug = record["instruction"].lower().replace(" ", "-")
    video = next(v for v in videos if v.startswith("push-v3_ep0002"))
    assert slug in video
    frames = iio.imread(cfg.out_dir / "videos" / video)
    assert frames.shape == (record["length"] + 1, 32, 32, 3)  # the reset frame, then one per step


def test_a_killed_run_resumes_without_rerunning_finished_episodes(reference_run, tmp_path):
    ref_cfg, ref = reference_run
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "polyact.cli",
        "eval",
        "env.tasks=MT10",
        "env.height=32",
        "env.width=32",
        "env.max_episode_steps=60",
        "only_tasks=[reach-v3,push-v3]",
        "episodes_per_task=4",
        "workers=2",
        f"out={out}",
        "progress=false",
    ]
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV} | {FAULT_ENV: "eval.episode_recorded:3"}
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        status = proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the workers, which outlive a parent killed by SIGKILL
    assert status == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    jsonl = out / EPISODES_FILE
    before = jsonl.read_bytes()
    assert before.count(b"\n") == 3  # killed right after the third episode was recorded
    with open(jsonl, "ab") as f:  # as if the kill had landed in the middle of writing a line
        f.write(b'{"task": "push-v3", "ind')

    rerun = subprocess.run(command, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "ignored a torn last line" in rerun.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["episodes_resumed"] == 3 and data["episodes_run"] == 5  # the finished ones were not run again
    after = jsonl.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 8
    assert episodes(out) == episodes(ref_cfg.out_dir)
    assert {k: data[k] for k in NUMBERS} == {k: ref[k] for k in NUMBERS}
    assert sorted(p.name for p in (out / "videos").iterdir()) == ref["videos"]

"""The goal switch end to end: collect without the goal, train, evaluate; the two protocols refuse each other."""

from __future__ import annotations

import json

import pytest

from polyact.cli import main
from polyact.data import EpisodeDataset
from polyact.policies import VLAPolicy

ENV = ["env.tasks=reach-v3", "env.height=32", "env.width=32"]


@pytest.mark.slow
def test_collect_train_and_evaluate_without_the_goal(tmp_path, capsys):
    demos, run, evals = tmp_path / "demos", tmp_path / "run", tmp_path / "eval"
    collect = ["collect", *ENV, "env.goal=false", "episodes_per_task=2", "workers=1", "progress=false"]
    assert main([*collect, f"out={demos}"]) == 0
    dataset = EpisodeDataset(demos)
    assert "goal" not in dataset.features and dataset.env_spec.goal_names == ()

    train = ["train", f"dataset={demos}", f"out={run}", "policy.size=tiny", "batch_size=8", "steps=2"]
    assert main([*train, "num_workers=0", "progress=false"]) == 0
    policy = VLAPolicy.from_pretrained(run / "policy")
    assert policy.config.goal_dim == 0 and policy.env_spec.goal_names == ()

    evaluate = ["eval", f"policy={run / 'policy'}", *ENV, "episodes_per_task=1", "env.max_episode_steps=5"]
    evaluate += ["workers=1", "videos=false", "progress=false"]
    assert main([*evaluate, "env.goal=false", f"out={evals}"]) == 0
    results = json.loads((evals / "results.json").read_text())
    assert results["observation"].startswith("goal-free") and results["overall"]["episodes"] == 1

    capsys.readouterr()
    assert main([*evaluate, f"out={tmp_path / 'with-goal'}"]) == 2  # env.goal defaults to true
    assert "trained without the goal (goal-free protocol)" in capsys.readouterr().err
    assert not (tmp_path / "with-goal").exists()


def test_a_goal_policy_is_trained_goal_free_with_policy_goal_false(metaworld_dataset, tmp_path):
    from polyact.config import load_config
    from polyact.train import TrainConfig, train

    cfg = load_config(
        TrainConfig,
        [f"dataset={metaworld_dataset}", f"out={tmp_path}", "policy.size=tiny", "policy.goal=false"]
        + ["batch_size=8", "steps=1", "num_workers=0", "progress=false"],
    )
    policy = VLAPolicy.from_pretrained(train(cfg))
    assert EpisodeDataset(metaworld_dataset).env_spec.goal_names  # the dataset has the goal ...
    assert policy.config.goal_dim == 0 and policy.env_spec.goal_names == ()  # ... the policy does not read it
    assert "goal" not in policy.env_spec.notes

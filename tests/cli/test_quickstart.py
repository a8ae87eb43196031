"""The README's main command, end to end at toy scale: collect, train, evaluate, print the table."""

from __future__ import annotations

import json

import pytest

from polyact.cli import COMMANDS, main


@pytest.mark.slow
def test_quickstart_collects_trains_and_evaluates(tmp_path, capsys):
    out = tmp_path / "qs"
    args = [
        "quickstart",
        f"out={out}",
        "tasks=reach-v3",
        "image_size=24",
        "demos_per_task=2",
        "train_steps=4",
        "batch_size=8",
        "eval_episodes_per_task=2",
        "episode_steps=30",
        "protocol=seeds",  # the default, lerobot, runs LeRobot's 500 steps
        "camera=corner",
        "workers=1",
        "policy.size=tiny",
        "policy.vision.crop=[]",  # the default crop is for 80x80 images
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| reach-v3 |" in printed and "**mean**" in printed and "minutes: collect" in printed
    results = json.loads((out / "eval" / "results.json").read_text())
    assert results["per_task"]["reach-v3"]["episodes"] == 2
    assert (out / "train" / "policy" / "model.safetensors").is_file()
    # a second run finds every stage done and only reprints
    assert main(args) == 0
    assert "resumed" in capsys.readouterr().out.lower()


def test_the_default_quickstart_evaluates_under_lerobots_protocol():
    from polyact.quickstart import QuickstartConfig

    cfg = QuickstartConfig()
    evaluation = cfg.eval_config("runs/quickstart/train/policy")  # validated as `polyact eval` would
    assert evaluation.protocol == "lerobot" and not evaluation.env.goal
    assert evaluation.env.cameras == ["corner2_lerobot"] and evaluation.observation.startswith("goal-free")
    assert not cfg.env().goal  # collection records goal-free demonstrations too


def test_the_quickstart_seed_changes_training_only():
    from polyact.quickstart import QuickstartConfig

    first, second = QuickstartConfig(), QuickstartConfig(seed=2)
    assert (first.train_config().seed, second.train_config().seed) == (0, 2)
    assert first.env() == second.env()  # the same demonstrations
    assert first.eval_config("p") == second.eval_config("p")  # the same evaluation episodes


def test_the_quickstart_anneals_over_its_time_cap_when_it_has_one():
    from polyact.quickstart import QuickstartConfig

    assert QuickstartConfig().train_config().optim.anneal_over == "minutes"  # ends at its final lr
    assert QuickstartConfig(train_minutes=0).train_config().optim.anneal_over == "steps"  # no cap to follow


def test_a_crop_that_does_not_fit_the_image_size_is_refused_before_collecting(tmp_path, capsys):
    assert main(["quickstart", f"out={tmp_path}", "image_size=48", "policy.vision.crop=[0,0,64,64]"]) == 2
    assert "policy.vision.crop [0, 0, 64, 64]" in capsys.readouterr().err
    assert not (tmp_path / "demos").exists()


def test_cli_lists_commands_and_rejects_unknown_ones(capsys):
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    for command in ("quickstart", "collect", "train", "eval", "eval compare", "data info", "tasks"):
        assert f"polyact {command}" in listing
    assert main(["trian"]) == 2
    assert "closest first: train" in capsys.readouterr().err


def test_command_help_shows_the_config(capsys):
    assert main(["train", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "batch_size: 64" in shown and "head:" in shown


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_shows_its_defaults_even_those_with_required_settings(command, capsys):
    # commands whose config needs e.g. out= or bags= must still print their defaults, not that error
    assert main([*command.split(), "--help"]) == 0
    assert "defaults:" in capsys.readouterr().out

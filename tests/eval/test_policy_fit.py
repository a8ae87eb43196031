"""Bad input fails before any rollout: a policy that does not fit the suite, unknown tasks, bad settings."""

from __future__ import annotations

import dataclasses

import pytest

from polyact.contract import FeatureSpec, PolicyRequirements, check_compatible
from polyact.envs.config import EnvConfig
from polyact.envs.metaworld import metaworld_spec
from polyact.errors import ConfigError, ContractError, UnknownNameError
from polyact.eval import run as run_module
from polyact.eval.config import EvalConfig
from polyact.eval.policy import ExpertPolicy
from polyact.eval.trained import load_policy

SPEC = metaworld_spec("reach-v3", EnvConfig(tasks="MT10", cameras=["corner", "topview"], height=64, width=64), 80.0)
FITS = PolicyRequirements(cameras=("corner",), action_dim=4, state_dim=4, goal_dim=3, image_size=(64, 64))


def test_a_fitting_policy_passes():
    check_compatible(FITS, SPEC)
    check_compatible(None, SPEC)  # the scripted experts fit every suite


def test_a_missing_camera_is_named_with_the_fix():
    req = PolicyRequirements(("corner", "wrist"), 4, 4, 3)
    with pytest.raises(ContractError, match=r"missing \['wrist'\].*env.cameras=\[corner,wrist\]"):
        check_compatible(req, SPEC)


def test_another_action_dimension_is_refused():
    req = PolicyRequirements(("corner",), action_dim=7, state_dim=4, goal_dim=3)  # an rlbench_like policy
    with pytest.raises(ContractError, match=r"7-D actions but metaworld takes 4-D actions \(dx, dy, dz, gripper\)"):
        check_compatible(req, SPEC)


def test_state_goal_and_image_size_mismatches_are_all_listed():
    req = PolicyRequirements(("corner",), 4, state_dim=9, goal_dim=0, image_size=(128, 128))
    with pytest.raises(ContractError) as err:
        check_compatible(req, SPEC, "policy 'ckpt'")
    message = str(err.value)
    assert message.startswith("policy 'ckpt' does not fit metaworld task reach-v3")
    assert "9-D state" in message and "trained without the goal" in message
    assert "env.height=128 env.width=128" in message


def test_the_goal_protocols_refuse_each_other():
    goal_free_env = metaworld_spec("reach-v3", EnvConfig(tasks="MT10", height=64, width=64, goal=False), 80.0)
    with pytest.raises(ContractError, match="reads the 3-D goal .privileged-goal protocol.*set env.goal=true"):
        check_compatible(FITS, goal_free_env)
    goal_free_policy = PolicyRequirements(("corner",), 4, 4, goal_dim=0, image_size=(64, 64))
    with pytest.raises(ContractError, match="trained without the goal .goal-free protocol.*set env.goal=false"):
        check_compatible(goal_free_policy, SPEC)
    check_compatible(goal_free_policy, goal_free_env)


def test_sub_goals_from_the_environment_need_a_policy_that_reads_them():
    with_subgoals = dataclasses.replace(SPEC, subgoal=True)  # as an env with a sub-goal oracle describes itself
    with pytest.raises(ContractError, match=r"gives sub-goals \(env.subgoal_oracle=true\) but the policy is not"):
        check_compatible(FITS, with_subgoals)
    conditioned = dataclasses.replace(FITS, subgoal=True)
    check_compatible(conditioned, with_subgoals)
    check_compatible(conditioned, SPEC)  # without them it asks its sub-goal predictor
    assert conditioned.optional_inputs() == {"subgoal": FeatureSpec("float32", (4,))} and not FITS.optional_inputs()


def test_the_lerobot_protocol_names_every_setting_it_needs():
    with pytest.raises(ConfigError, match=r"env.goal=false.*env.cameras=\[corner2_lerobot\].*max_episode_steps"):
        EvalConfig(protocol="lerobot", env=EnvConfig(tasks="MT10", max_episode_steps=400))
    with pytest.raises(ConfigError, match="needs Meta-World tasks"):
        EvalConfig(protocol="lerobot", env=EnvConfig(tasks="RLB12"))
    cfg = EvalConfig(protocol="lerobot", env=EnvConfig(tasks="MT10", cameras=["corner2_lerobot"], goal=False))
    assert cfg.observation.startswith("goal-free") and EvalConfig().observation.startswith("privileged goal")
    # the RLBench-like suite has no goal vector to give or withhold, whatever env.goal says
    assert EvalConfig(env=EnvConfig(tasks="RLB12", goal=True)).observation.startswith("no goal vector")


class MisfitPolicy(ExpertPolicy):
    requirements = PolicyRequirements(("corner",), action_dim=7, state_dim=4, goal_dim=3)


def test_evaluate_refuses_a_misfit_before_any_rollout(tmp_path, make_config, monkeypatch):
    monkeypatch.setattr(run_module, "policy_for_eval", lambda cfg, n: MisfitPolicy())
    cfg = make_config(tmp_path / "run")
    with pytest.raises(ContractError, match="7-D actions"):
        run_module.evaluate(cfg)
    assert not (tmp_path / "run").exists()  # no store, no worker, no episode


def test_unknown_tasks_list_the_closest_first():
    with pytest.raises(UnknownNameError, match=r"'MT11'.*closest first: MT10"):
        EvalConfig(env=EnvConfig(tasks="MT11"))
    with pytest.raises(UnknownNameError, match=r"'rech-v3'; valid choices, closest first: reach-v3"):
        EvalConfig(env=EnvConfig(tasks="MT10"), only_tasks=["rech-v3"])


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="50 goal configurations"):
        EvalConfig(protocol="metaworld_goals", episodes_per_task=51)
    with pytest.raises(ConfigError, match="needs Meta-World tasks"):
        EvalConfig(protocol="metaworld_goals", env=EnvConfig(tasks="RLB-test"))
    with pytest.raises(UnknownNameError, match="temporal_ensemble"):
        EvalConfig(policy="ckpt", execution="temporal_ensembling")
    with pytest.raises(ConfigError, match="scripted experts act step by step"):
        EvalConfig(execution="receding_horizon")
    with pytest.raises(UnknownNameError, match="seeds"):
        EvalConfig(protocol="seed")


def test_a_checkpoint_path_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="neither 'expert' nor a checkpoint directory"):
        load_policy(str(tmp_path / "nope"), num_envs=2)

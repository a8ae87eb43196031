"""`polyact policy set-spec`: converting a policy directory saved before it carried its environment spec."""

from __future__ import annotations

import json

import numpy as np

from polyact.cli import main
from polyact.contract import ActionSpec, CameraSpec, EnvSpec
from polyact.policies import PolicyConfig, VLAPolicy, build_policy
from polyact.policies.policy_dir import ENV_SPEC_FILE

SPEC = EnvSpec(
    suite="synthetic",
    tasks=("t0",),
    cameras=(CameraSpec("front", 32, 32),),
    state_names=("x", "y", "z", "grip"),
    goal_names=(),
    action=ActionSpec(("dx", "dy", "dz", "grip"), (-1.0,) * 4, (1.0,) * 4, "end-effector deltas"),
    control_hz=10.0,
    max_episode_steps=20,
)


def stats() -> dict:
    def feat(dim: int) -> dict:
        zeros, ones = np.zeros(dim, np.float32), np.ones(dim, np.float32)
        return {"mean": zeros, "std": ones, "min": -ones, "max": ones, "q01": -ones, "q99": ones, "count": 10}

    return {"action": feat(4), "state": feat(4), "rgb/front": feat(3)}


def test_an_old_policy_directory_gets_its_spec(tmp_path, capsys):
    policy_dir = tmp_path / "policy"
    build_policy(PolicyConfig(size="tiny"), SPEC, stats(), ["go"]).save_pretrained(policy_dir)
    (policy_dir / ENV_SPEC_FILE).unlink()  # as saved before 2026-11-30
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC.to_dict()))
    assert main(["policy", "set-spec", str(policy_dir), str(spec_file)]) == 0
    assert ENV_SPEC_FILE in capsys.readouterr().out
    assert VLAPolicy.from_pretrained(policy_dir).env_spec == SPEC


def test_a_spec_that_does_not_fit_is_refused(tmp_path, capsys):
    policy_dir = tmp_path / "policy"
    build_policy(PolicyConfig(size="tiny"), SPEC, stats(), ["go"]).save_pretrained(policy_dir)
    (policy_dir / ENV_SPEC_FILE).unlink()
    other = tmp_path / "spec.json"
    other.write_text(json.dumps({**SPEC.to_dict(), "state_names": ["x", "y"]}))
    assert main(["policy", "set-spec", str(policy_dir), str(other)]) == 2
    assert "2-D" in capsys.readouterr().err
    assert not (policy_dir / ENV_SPEC_FILE).exists()


def test_usage_is_shown_for_missing_arguments(capsys):
    assert main(["policy", "set-spec", "only-one"]) == 2
    assert "usage: polyact policy set-spec DIR SOURCE" in capsys.readouterr().err

"""A checkpoint as the server runs it: finding its environment spec, checking observations, seeded sampling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from polyact.contract import EnvSpec
from polyact.data import DatasetWriter
from polyact.deploy.policy import RUN_FILE, ServedPolicy, load_served_policy
from polyact.deploy.protocol import RequestError
from polyact.errors import ConfigError, ContractError
from polyact.policies import HeadConfig, PolicyConfig, build_policy


def test_a_training_run_names_its_dataset_so_no_spec_is_needed(checkpoint, served, tmp_path, observation):
    policy_dir, spec_file = checkpoint
    spec = EnvSpec.from_dict(json.loads(Path(spec_file).read_text()))
    dataset = tmp_path / "demos"
    DatasetWriter.create(
        dataset,
        features=spec.features(),
        action=spec.action_feature(),
        env_spec=spec,
        fps=spec.control_hz,
        tasks={"t0": []},
    ).close()
    run = tmp_path / "run"
    shutil.copytree(policy_dir, run / "policy")
    (run / RUN_FILE).write_text(json.dumps({"dataset": str(dataset), "seed": 0}))  # as `polyact train` writes it
    found = load_served_policy(str(run / "policy"))
    assert found.spec == spec and found.metadata["action"] == served.metadata["action"]
    np.testing.assert_array_equal(found.infer(observation(0)), served.infer(observation(0)))


def test_without_a_spec_or_a_run_the_error_says_what_to_give(checkpoint, tmp_path):
    policy_dir, _ = checkpoint
    with pytest.raises(ConfigError, match="spec= is required: .* has no run.json"):
        load_served_policy(policy_dir)
    with pytest.raises(ConfigError, match="is neither a dataset directory .* nor a task name"):
        load_served_policy(policy_dir, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="is not a checkpoint directory"):
        load_served_policy(str(tmp_path))


def test_a_spec_that_does_not_fit_the_checkpoint_is_refused(checkpoint, tmp_path):
    policy_dir, spec_file = checkpoint
    spec = EnvSpec.from_dict(json.loads(Path(spec_file).read_text()))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**spec.to_dict(), "cameras": [{"name": "top", "height": 32, "width": 32}]}))
    with pytest.raises(ContractError, match=r"it reads cameras \['corner'\] but the environment renders \['top'\]"):
        load_served_policy(policy_dir, str(other))


def test_infer_checks_the_observation_like_the_server(served, observation):
    with pytest.raises(RequestError, match=r"lacks \['state'\]"):
        served.infer({k: v for k, v in observation(0).items() if k != "state"})
    with pytest.raises(RequestError, match="give 1 to 2 observations, got 3"):
        served.infer([observation(0)] * 3)


def test_a_seed_makes_a_sampling_head_repeatable_whatever_shares_its_batch(served, stats, observation):
    torch.manual_seed(0)
    config = PolicyConfig(size="tiny", head=HeadConfig(name="flow", sample_steps=2), history=1, chunk=4, replan_every=2)
    flow = build_policy(config, served.spec, stats, ["open the drawer"]).eval()  # no augmentation
    policy = ServedPolicy(flow, served.spec, "flow")
    obs = {k: v for k, v in observation(0).items() if k in policy.inputs or k == "instruction"}
    alone = policy.predict([[obs]], [7])[0]
    batched = policy.predict([[obs], [obs], [obs]], [None, 7, 8])
    np.testing.assert_allclose(batched[1], alone, rtol=1e-5, atol=1e-6)
    assert not np.allclose(batched[2], alone)  # another seed, other noise
    assert not np.allclose(batched[0], alone)  # no seed: fresh noise

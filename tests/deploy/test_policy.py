"""A checkpoint as the server runs it: its own environment spec, the override and the conversion of old
checkpoints, checked observations, seeded sampling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from polyact.contract import EnvSpec
from polyact.data import DatasetWriter
from polyact.deploy.policy import ServedPolicy, load_served_policy, set_policy_spec
from polyact.deploy.protocol import RequestError
from polyact.errors import ConfigError, ContractError
from polyact.policies import HeadConfig, PolicyConfig, build_policy
from polyact.policies.policy_dir import ENV_SPEC_FILE


def test_a_checkpoint_serves_with_its_own_spec_from_any_working_directory(checkpoint, tmp_path, monkeypatch):
    policy_dir, spec_file = checkpoint
    monkeypatch.chdir(tmp_path)  # nothing beside the checkpoint or in the working directory is read
    found = load_served_policy(str(Path(policy_dir).resolve()))
    assert found.spec == EnvSpec.from_dict(json.loads(Path(spec_file).read_text()))
    assert found.metadata["action"]["names"] == ["dx", "dy", "dz", "grip"] and found.metadata["control_hz"] == 10.0


def test_an_old_checkpoint_says_how_to_convert_it_and_works_once_converted(checkpoint, served, tmp_path, observation):
    policy_dir, spec_file = checkpoint
    old = tmp_path / "old"
    shutil.copytree(policy_dir, old)
    (old / ENV_SPEC_FILE).unlink()  # as saved before policies recorded their spec
    with pytest.raises(ConfigError, match=rf"no {ENV_SPEC_FILE}.*`polyact policy set-spec {old} SOURCE`"):
        load_served_policy(str(old))
    assert load_served_policy(str(old), spec_file).spec == served.spec  # spec= still works without converting
    assert set_policy_spec(str(old), spec_file) == old / ENV_SPEC_FILE
    converted = load_served_policy(str(old))
    assert converted.spec == served.spec
    np.testing.assert_array_equal(converted.infer(observation(0)), served.infer(observation(0)))


def test_a_checkpoint_can_be_converted_from_its_training_dataset(checkpoint, served, tmp_path):
    policy_dir, _ = checkpoint
    dataset = tmp_path / "demos"
    spec = served.spec
    DatasetWriter.for_spec(dataset, spec, tasks={"t0": []}).close()
    old = tmp_path / "old"
    shutil.copytree(policy_dir, old)
    (old / ENV_SPEC_FILE).unlink()
    set_policy_spec(str(old), str(dataset))
    assert load_served_policy(str(old)).spec == spec


def test_a_spec_that_does_not_fit_the_checkpoint_is_refused(checkpoint, tmp_path):
    policy_dir, spec_file = checkpoint
    spec = EnvSpec.from_dict(json.loads(Path(spec_file).read_text()))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**spec.to_dict(), "cameras": [{"name": "top", "height": 32, "width": 32}]}))
    fits_not = pytest.raises(
        ContractError, match=r"it reads cameras \['corner'\] but the environment renders \['top'\]"
    )
    with fits_not:
        load_served_policy(policy_dir, str(other))
    old = tmp_path / "old"
    shutil.copytree(policy_dir, old)
    (old / ENV_SPEC_FILE).unlink()
    with fits_not:
        set_policy_spec(str(old), str(other))
    assert not (old / ENV_SPEC_FILE).exists()  # nothing written


def test_bad_paths_and_sources_are_named(checkpoint, tmp_path):
    policy_dir, _ = checkpoint
    with pytest.raises(ConfigError, match="is neither a dataset directory .* nor a task name"):
        load_served_policy(policy_dir, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="is not a checkpoint directory"):
        load_served_policy(str(tmp_path))
    with pytest.raises(ConfigError, match="is not a checkpoint directory"):
        set_policy_spec(str(tmp_path), str(tmp_path))


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

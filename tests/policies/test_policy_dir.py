"""A policy directory describes itself: its environment spec travels with the weights; old directories load."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from polyact.errors import ConfigError, UnknownNameError
from polyact.policies import HeadConfig, PolicyConfig, VLAPolicy
from polyact.policies.heads import make_head
from polyact.policies.policy_dir import CONFIG_FILE, ENV_SPEC_FILE, read_env_spec, write_env_spec

from .conftest import make_batch, make_policy, make_spec


def test_the_environment_spec_is_saved_and_loaded_with_the_weights(tmp_path):
    spec = make_spec()
    policy = make_policy("l1", spec)
    assert policy.env_spec == spec
    policy.save_pretrained(tmp_path / "p")
    loaded = VLAPolicy.from_pretrained(tmp_path / "p")
    assert loaded.env_spec == spec
    assert loaded.env_spec.action.names == spec.action.names and loaded.env_spec.control_hz == 10.0


def test_a_directory_without_a_spec_still_loads_and_can_be_given_one(tmp_path):
    spec = make_spec()
    make_policy("l1", spec).save_pretrained(tmp_path / "p")
    (tmp_path / "p" / ENV_SPEC_FILE).unlink()
    old = VLAPolicy.from_pretrained(tmp_path / "p")
    assert old.env_spec is None
    write_env_spec(tmp_path / "p", spec)
    assert VLAPolicy.from_pretrained(tmp_path / "p").env_spec == spec
    with pytest.raises(ConfigError, match="not a polyact policy directory"):
        write_env_spec(tmp_path, spec)


def test_a_malformed_spec_file_names_the_file(tmp_path):
    make_policy("l1").save_pretrained(tmp_path)
    (tmp_path / ENV_SPEC_FILE).write_text(json.dumps({"suite": "x"}))
    with pytest.raises(ConfigError, match=f"{ENV_SPEC_FILE} is not a valid environment spec"):
        read_env_spec(tmp_path)


def test_config_written_before_the_renames_loads_with_the_same_outputs(tmp_path):
    """Checkpoints of 2026-11-26 say `heads` and `execute`; they load as attention_heads and replan_every."""
    policy = make_policy("l1").eval()
    policy.save_pretrained(tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    config["heads"], config["execute"] = config.pop("attention_heads"), config.pop("replan_every")
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    old = VLAPolicy.from_pretrained(tmp_path)
    assert old.config.attention_heads == policy.config.attention_heads
    assert old.config.replan_every == policy.config.replan_every
    batch = make_batch(make_spec())
    np.testing.assert_array_equal(old.predict_chunk(batch), policy.predict_chunk(batch))


def test_an_unknown_head_name_raises_with_the_valid_ones():
    head = HeadConfig()
    head.name = "difusion"  # past __post_init__, as a hand-edited config could be
    with pytest.raises(UnknownNameError, match="closest first: diffusion"):
        make_head(head, width=8, chunk=2, action_dim=3, attention_heads=2)


def test_policy_config_imports_without_torch():
    code = "import sys, polyact.policies.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert PolicyConfig(size="tiny").resolved().attention_heads == 2


def test_saving_replaces_a_policy_directory_whole_and_leaves_other_directories_alone(tmp_path):
    first, second = make_policy("l1"), make_policy("flow")
    first.save_pretrained(tmp_path / "p")
    (tmp_path / "p" / "stale.txt").write_text("from an older save")
    second.save_pretrained(tmp_path / "p")
    assert not (tmp_path / "p" / "stale.txt").exists()  # one rename: nothing of the old directory survives
    assert VLAPolicy.from_pretrained(tmp_path / "p").config.head.name == "flow"
    assert [p.name for p in tmp_path.iterdir()] == ["p"]  # no temporary directory left
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds other files and no policy"):
        first.save_pretrained(tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"

"""A policy with no camera (PolicyConfig.state_only): what it is built of, what it reads, what it refuses.

What each test guards:
- test_a_state_only_policy_trains_saves_and_loads: for the l1 and the flow head, build_policy on an
  environment with a camera gives a policy with no image encoder and no camera in its config, which
  reads only the state, goal and instruction (PolicyRequirements.inputs), trains two steps on a batch
  with no image in it, and loads from its directory with the same weights and the same chunks.
- test_the_trunk_reads_the_state_and_no_image: its chunks change with the state and not with images a
  batch happens to carry.
- test_state_noise_perturbs_training_only: policy.state_noise adds noise to the normalised state in
  training, drawn from the step's generator (same seed, same loss), and never at inference.
- test_settings_that_need_images_are_refused: cameras, depth, a VLM backbone or heatmap translation
  with state_only=true name themselves in the error, also from the command line's overrides; a
  complete state-only config passes check_complete.

Training through `polyact train policy.state_only=true` on a dataset with images was checked by hand
(2 steps on tests/train's Meta-World dataset: the loader's keys are the state and the goal); as a test
it would cost ~40 s of the CI budget for what observation_keys = PolicyRequirements.inputs already gives.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyact.config import load_config
from polyact.contract import PolicyRequirements
from polyact.errors import ConfigError
from polyact.policies import PolicyConfig, VLAPolicy
from polyact.train import TrainConfig


def state_batch(synthetic, spec):
    """A loader batch of `spec` without its camera keys."""
    return {k: v for k, v in synthetic["batch"](spec).items() if "/rgb/" not in k and "trinsics/" not in k}


@pytest.mark.parametrize(("head", "head_overrides"), [("l1", {}), ("flow", {"sample_steps": 2})])
def test_a_state_only_policy_trains_saves_and_loads(synthetic, tmp_path, head, head_overrides):
    spec = synthetic["spec"]()
    policy = synthetic["policy"](head, spec, head_overrides=head_overrides, state_only=True)
    assert policy.images is None and policy.config.cameras == [] and policy.config.image_height == 0
    assert set(PolicyRequirements.of(policy.config).inputs()) == {"state", "goal"}
    batch = state_batch(synthetic, spec)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    for step in range(2):
        loss, _ = policy.compute_loss(batch, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())

    policy.eval().save_pretrained(tmp_path / "ckpt")
    loaded = VLAPolicy.from_pretrained(tmp_path / "ckpt")
    assert loaded.config.state_only and loaded.images is None
    for k, v in policy.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    a = policy.predict_chunk(batch, generator=torch.Generator().manual_seed(5))
    b = loaded.predict_chunk(batch, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 4, spec.action.dim)
    np.testing.assert_array_equal(a, b)


def test_the_trunk_reads_the_state_and_no_image(synthetic):
    spec = synthetic["spec"]()
    policy = synthetic["policy"]("l1", spec, state_only=True).eval()
    with_images = synthetic["batch"](spec)
    without = state_batch(synthetic, spec)
    np.testing.assert_array_equal(policy.predict_chunk(with_images), policy.predict_chunk(without))
    moved = {**without, "obs/state": without["obs/state"] + 1.0}
    assert not np.allclose(policy.predict_chunk(moved), policy.predict_chunk(without))


def test_state_noise_perturbs_training_only(synthetic):
    spec = synthetic["spec"]()
    batch = state_batch(synthetic, spec)
    clean = synthetic["policy"]("l1", spec, state_only=True)
    noisy = synthetic["policy"]("l1", spec, state_only=True, state_noise=0.5)
    noisy.load_state_dict(clean.state_dict())

    def loss(policy, seed):
        return policy.compute_loss(batch, generator=torch.Generator().manual_seed(seed))[0].item()

    assert loss(noisy, 0) == loss(noisy, 0)
    assert loss(noisy, 0) != loss(noisy, 1)
    assert loss(clean, 0) == loss(clean, 1)
    np.testing.assert_array_equal(clean.eval().predict_chunk(batch), noisy.eval().predict_chunk(batch))
    assert loss(noisy, 0) == loss(clean, 0)  # in eval mode the noise is off
    with pytest.raises(ConfigError, match="state_noise is a std in normalised units, >= 0"):
        PolicyConfig(state_noise=-0.1)
    with pytest.raises(ConfigError, match="'state_noise': 0.1"):
        PolicyConfig(backbone="vlm", vlm={"path": "x"}, head={"name": "flow"}, state_noise=0.1)


def test_settings_that_need_images_are_refused(synthetic):
    for overrides, named in [
        ({"cameras": ["corner"]}, "'cameras': \\['corner'\\]"),
        ({"vision": {"depth": True}}, "'vision.depth': True"),
        ({"translation": "heatmap", "chunk": 1, "replan_every": 1}, "'translation': 'heatmap'"),
    ]:
        with pytest.raises(ConfigError, match=f"state_only=true reads no camera.*{named}"):
            PolicyConfig(state_only=True, **overrides)
    with pytest.raises(ConfigError, match="'vision.depth': True"):
        load_config(TrainConfig, ["policy.state_only=true", "policy.vision.depth=true"])
    with pytest.raises(ConfigError, match="'backbone': 'vlm'"):
        PolicyConfig(state_only=True, backbone="vlm", vlm={"path": "x"}, head={"name": "flow"})
    PolicyConfig(state_only=True, action_dim=4, state_dim=4, text={"encoder": "bytes"}).check_complete()
    with pytest.raises(ConfigError, match="lacks environment fields"):
        PolicyConfig(state_only=False, action_dim=4, state_dim=4, text={"encoder": "bytes"}).check_complete()

"""GravMAD's sub-goal maps: their geometry against hand-computed values, and a policy that reads them, takes
them from a sub-goal predictor at inference and keeps that predictor through save and load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyact.contract import PolicyRequirements
from polyact.errors import ConfigError, ContractError
from polyact.policies import PolicyConfig, VLAPolicy, build_policy
from polyact.policies.gravmap import GRIPPER_RADIUS, NEUTRAL_OPENNESS, backproject_pixels, gravmap
from polyact.policies.heatmap import project

K = torch.tensor([[10.0, 0.0, 2.0], [0.0, 10.0, 2.0], [0.0, 0.0, 1.0]])


def test_backprojection_matches_hand_computed_points():
    depth = torch.full((1, 4, 4), 2.0)
    depth[0, 3, 1] = 0.5
    pose = torch.eye(4)
    pose[:3, :3] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees about z
    pose[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    points = backproject_pixels(depth, K[None], pose[None])[0]
    # pixel (0, 0) has its centre at (0.5, 0.5): camera point ((0.5 - 2) / 10 * 2, same, 2) = (-0.3, -0.3, 2),
    # rotated to (0.3, -0.3, 2) and moved by (1, 2, 3)
    torch.testing.assert_close(points[0, 0], torch.tensor([1.3, 1.7, 5.0]))
    # pixel (row 3, col 1) at 0.5 m: camera ((1.5 - 2) / 10 * 0.5, (3.5 - 2) / 10 * 0.5, 0.5) = (-0.025, 0.075, 0.5)
    torch.testing.assert_close(points[3, 1], torch.tensor([1.0 - 0.075, 2.0 - 0.025, 3.5]))


def test_backprojection_inverts_the_heatmap_projection():
    depth = 0.5 + torch.rand(2, 6, 8, generator=torch.Generator().manual_seed(0))
    pose = torch.eye(4)
    pose[:3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # looking down from 1 m
    pose[2, 3] = 1.0
    points = backproject_pixels(depth, K.expand(2, 3, 3), pose.expand(2, 4, 4))
    pixels = project(points.reshape(2, -1, 3), K.expand(2, 3, 3), pose.expand(2, 4, 4)).reshape(2, 6, 8, 3)
    torch.testing.assert_close(pixels[1, 4, 5], torch.tensor([5.5, 4.5, float(depth[1, 4, 5])]))
    torch.testing.assert_close(pixels[..., 2], depth)


def test_cost_and_gripper_maps_against_hand_computed_values():
    points = torch.tensor([[0.3, 0.4, 0.0], [2.0, 0.0, 0.0], [0.02, -0.01, 0.03], [0.04, 0.0, 0.0]])
    position = torch.zeros(2, 3)
    maps = gravmap(points.reshape(1, 1, 4, 3).expand(2, 1, 4, 3), position, torch.tensor([1.0, 0.0]))
    assert maps.shape == (2, 2, 1, 4)
    cost, gripper = maps[:, 0, 0], maps[:, 1, 0]
    torch.testing.assert_close(cost[0], torch.tensor([0.5, 1.0, (0.02**2 + 0.01**2 + 0.03**2) ** 0.5, 0.04]))
    assert GRIPPER_RADIUS == 0.03  # point 3 lies inside the cube, point 4 (4 cm out along x) outside
    assert gripper[0].tolist() == [NEUTRAL_OPENNESS, NEUTRAL_OPENNESS, 1.0, NEUTRAL_OPENNESS]
    assert gripper[1].tolist() == [NEUTRAL_OPENNESS, NEUTRAL_OPENNESS, 0.0, NEUTRAL_OPENNESS]


def conditioned_policy(synthetic, **overrides) -> VLAPolicy:
    spec = synthetic["spec"](action_dim=7, cameras=("corner", "wrist"))
    cfg = synthetic["config"](
        "l1", chunk=1, replan_every=1, subgoal_conditioning="gravmap", vision={"depth": True}, **overrides
    )
    torch.manual_seed(0)
    return build_policy(cfg, spec, synthetic["stats"](spec), ["pick up the red block"])


def subgoal_batch(synthetic, subgoal: list[float]) -> dict:
    spec = synthetic["spec"](action_dim=7, cameras=("corner", "wrist"))
    batch = synthetic["batch"](spec, batch=2, history=2, chunk=1, seed=3)
    for cam in ("corner", "wrist"):
        pose = torch.eye(4)
        pose[:3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
        pose[2, 3] = 2.0
        batch[f"obs/extrinsics/{cam}"][:] = pose
    batch["obs/subgoal"] = torch.tensor(subgoal).expand(2, 2, 7).clone()
    return batch


def test_a_conditioned_policy_reads_its_subgoal(synthetic):
    policy = conditioned_policy(synthetic)
    assert policy.images.encoders["corner"].net[0].in_channels == 5  # RGB and the two maps
    loss, _ = policy.compute_loss(subgoal_batch(synthetic, [0.2, 0.1, 0.3, 0, 0, 0, -1]))
    assert torch.isfinite(loss)
    policy.eval()
    here = policy.predict_chunk(subgoal_batch(synthetic, [0.2, 0.1, 0.3, 0, 0, 0, -1]))
    elsewhere = policy.predict_chunk(subgoal_batch(synthetic, [-0.5, 0.4, 0.0, 0, 0, 0, 1]))
    assert not np.allclose(here, elsewhere)
    inputs = PolicyRequirements.of(policy.config).inputs()
    assert {"depth/corner", "intrinsics/corner", "extrinsics/wrist"} <= set(inputs) and "subgoal" not in inputs


def predictor(synthetic) -> VLAPolicy:
    spec = synthetic["spec"](action_dim=7, cameras=("corner", "wrist"))
    cfg = synthetic["config"]("l1", chunk=1, replan_every=1, vision={"depth": True}, translation="heatmap")
    torch.manual_seed(1)
    return build_policy(cfg, spec, synthetic["stats"](spec), ["pick up the red block"]).eval()


def test_the_subgoal_predictor_gives_the_subgoal_at_inference_and_is_saved_with_the_policy(synthetic, tmp_path):
    policy = conditioned_policy(synthetic).eval()
    batch = subgoal_batch(synthetic, [0.0] * 7)
    del batch["obs/subgoal"]
    with pytest.raises(ContractError, match="needs 'obs/subgoal'.*or the policy a sub-goal predictor"):
        policy.predict_chunk(batch)
    helper = predictor(synthetic)
    policy.attach_subgoal_predictor(helper)
    predicted = policy.predict_chunk(batch)
    # the same as handing the policy the predictor's sub-goal
    given = dict(batch, **{"obs/subgoal": torch.as_tensor(helper.predict_chunk(batch)).expand(2, 2, 7)})
    np.testing.assert_allclose(predicted, policy.predict_chunk(given), atol=1e-6)
    # an observation's own sub-goal (an environment's sub-goal oracle) wins over the predictor's
    oracle = subgoal_batch(synthetic, [-0.5, 0.4, 0.0, 0, 0, 0, 1])
    without_predictor = conditioned_policy(synthetic).eval()
    np.testing.assert_allclose(policy.predict_chunk(oracle), without_predictor.predict_chunk(oracle), atol=1e-6)
    assert not np.allclose(policy.predict_chunk(oracle), predicted)
    policy.save_pretrained(tmp_path / "p")
    assert (tmp_path / "p" / "subgoal_predictor" / "model.safetensors").is_file()
    loaded = VLAPolicy.from_pretrained(tmp_path / "p")
    assert loaded.subgoal_predictor is not None
    np.testing.assert_allclose(loaded.predict_chunk(batch), predicted, atol=1e-5)


def test_what_subgoal_conditioning_refuses(synthetic):
    with pytest.raises(ConfigError, match="vision.depth=true"):
        PolicyConfig(subgoal_conditioning="gravmap", vision={"depth": False})
    with pytest.raises(ConfigError, match="vision.encoder='conv'"):
        PolicyConfig(subgoal_conditioning="gravmap", vision={"encoder": "vit", "depth": True})
    with pytest.raises(ConfigError, match="unknown subgoal conditioning 'voxposer'"):
        PolicyConfig(subgoal_conditioning="voxposer")
    policy = conditioned_policy(synthetic)
    chunked = synthetic["policy"]("l1", spec=synthetic["spec"](action_dim=7, cameras=("corner", "wrist")))
    with pytest.raises(ConfigError, match="predicts chunks of 4 x 7"):
        policy.attach_subgoal_predictor(chunked)
    with pytest.raises(ConfigError, match="not conditioned on sub-goals"):
        predictor(synthetic).attach_subgoal_predictor(predictor(synthetic))

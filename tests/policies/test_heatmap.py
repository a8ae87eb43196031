"""Heatmap translation: projection, targets and the 3-D search against hand-computed geometry, and a policy
that learns where its targets are."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from polyact.contract import PolicyRequirements
from polyact.errors import ConfigError
from polyact.policies import PolicyConfig, VLAPolicy, build_policy
from polyact.policies.heatmap import decode_translation, heatmap_targets, in_view, project

K = torch.tensor([[100.0, 0.0, 32.0], [0.0, 100.0, 32.0], [0.0, 0.0, 1.0]])


def look_at(eye: list[float], target: list[float]) -> torch.Tensor:
    """Camera-to-world (4, 4), OpenCV axes (x right, y down, z forward), looking from eye at target."""
    eye_t, target_t = torch.tensor(eye), torch.tensor(target)
    forward = (target_t - eye_t) / (target_t - eye_t).norm()
    up = torch.tensor([0.0, 0.0, 1.0]) if abs(float(forward[2])) < 0.99 else torch.tensor([0.0, 1.0, 0.0])
    right = torch.linalg.cross(forward, up)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    pose = torch.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye_t
    return pose


def test_project_matches_hand_computed_pinhole():
    # a camera 1 m above the origin looking straight down: camera x = world x, camera y = -world y
    pose = torch.eye(4)
    pose[:3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    pose[2, 3] = 1.0
    points = torch.tensor([[[0.1, 0.0, 0.0], [0.0, 0.2, 0.5], [0.0, 0.0, 2.0]]])
    got = project(points, K[None], pose[None])[0]
    # (0.1, 0, 0): 1 m deep, u = 100 * 0.1 + 32; (0, 0.2, 0.5): 0.5 m deep, v = 100 * -0.2 / 0.5 + 32
    torch.testing.assert_close(got[0], torch.tensor([42.0, 32.0, 1.0]))
    torch.testing.assert_close(got[1], torch.tensor([32.0, -8.0, 0.5]))
    assert got[2, 2] < 0  # behind the camera
    assert in_view(got[None], 64, 64)[0].tolist() == [True, False, False]


def test_targets_peak_at_the_projection_or_say_not_in_view():
    projected = torch.tensor([[42.0, 20.0, 1.0], [70.0, 20.0, 1.0], [10.0, 10.0, -1.0]])
    targets = heatmap_targets(projected, (64, 64), (32, 32))
    assert targets.shape == (3, 32 * 32 + 1)
    torch.testing.assert_close(targets.sum(1), torch.ones(3))
    # pixel (42, 20) of 64x64 is (21, 10) of the 32x32 heatmap: the Gaussian straddles cells 20/21 and 9/10
    peak = targets[0, :-1].reshape(32, 32)
    row, col = divmod(int(peak.argmax()), 32)
    assert row in (9, 10) and col in (20, 21)
    assert math.isclose(float(peak[9:11, 20:22].sum()), 4 * float(peak[10, 21]), rel_tol=1e-5)  # symmetric
    assert targets[0, -1] == 0 and targets[1, -1] == 1 and targets[2, -1] == 1


def three_cameras() -> tuple[torch.Tensor, torch.Tensor]:
    """Intrinsics (1, 3, 3, 3) and extrinsics (1, 3, 4, 4) of three cameras around a table at the origin."""
    poses = [
        look_at([1.0, 0.0, 0.8], [0, 0, 0]),
        look_at([0.0, 1.0, 0.8], [0, 0, 0]),
        look_at([0, -1.0, 0.8], [0, 0, 0]),
    ]
    return K.expand(1, 3, 3, 3).clone(), torch.stack(poses)[None]


def test_the_search_finds_the_point_whose_projections_the_heatmaps_mark():
    intrinsics, extrinsics = three_cameras()
    box = torch.tensor([[-0.3, -0.3, 0.0], [0.3, 0.3, 0.4]])
    for point in ([0.05, -0.12, 0.07], [-0.2, 0.1, 0.3]):
        target = torch.tensor([point])
        maps = [
            heatmap_targets(project(target[:, None], intrinsics[:, c], extrinsics[:, c])[:, 0], (64, 64), (32, 32))
            for c in range(3)
        ]
        log_probs = torch.stack(maps, dim=1).clamp(min=1e-8).log()
        found, seen = decode_translation(log_probs, (32, 32), (64, 64), intrinsics, extrinsics, box)
        assert seen.tolist() == [True]
        assert float((found - target).norm()) < 0.005  # pixels of the 64x64 images are ~1 cm here


def test_a_point_no_camera_sees_is_reported_unseen():
    intrinsics, extrinsics = three_cameras()
    # every camera sure that the target is out of view: every point out of all views scores best
    log_probs = torch.full((1, 3, 32 * 32 + 1), -30.0)
    log_probs[..., -1] = 0.0
    box = torch.tensor([[-0.3, -0.3, 0.0], [0.3, 0.3, 3.0]])
    _, seen = decode_translation(log_probs, (32, 32), (64, 64), intrinsics, extrinsics, box)
    assert seen.tolist() == [False]


def heatmap_policy(synthetic, **overrides) -> VLAPolicy:
    spec = synthetic["spec"](action_dim=7, cameras=("corner", "wrist"))
    cfg = synthetic["config"]("l1", chunk=1, replan_every=1, translation="heatmap", **overrides)
    torch.manual_seed(0)
    return build_policy(cfg, spec, synthetic["stats"](spec), ["pick up the red block"])


def pinned_batch(synthetic) -> dict:
    """Three samples whose targets lie in three places on a table both cameras look at from two sides."""
    spec = synthetic["spec"](action_dim=7, cameras=("corner", "wrist"))
    batch = synthetic["batch"](spec, batch=3, history=2, chunk=1, seed=1)
    for cam, eye in (("corner", [1.0, 0.0, 0.8]), ("wrist", [0.0, 1.0, 0.8])):
        batch[f"obs/extrinsics/{cam}"][:] = look_at(eye, [0.0, 0.0, 0.0])
    batch["action_is_pad"][:] = False
    batch["action"][:, 0, :3] = torch.tensor([[0.2, 0.1, 0.3], [-0.25, -0.1, 0.1], [0.05, 0.3, 0.2]])
    return batch


def test_a_heatmap_policy_learns_where_its_targets_are(synthetic):
    policy = heatmap_policy(synthetic)
    batch = pinned_batch(synthetic)
    torch.testing.assert_close(policy.translation_box, torch.tensor([[-1.03] * 3, [1.03] * 3]))  # stats +- 3 cm
    policy.translation_box.copy_(torch.tensor([[-0.4, -0.4, 0.0], [0.4, 0.4, 0.4]]))  # a smaller search: faster
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    first = None
    for _ in range(80):
        loss, metrics = policy.compute_loss(batch)
        first = first if first is not None else float(metrics["heatmap_ce"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(metrics["heatmap_ce"]) < 0.5 * first
    policy.eval()
    predicted = policy.predict_chunk(batch)
    assert predicted.shape == (3, 1, 7)
    error = np.linalg.norm(predicted[:, 0, :3] - batch["action"][:, 0, :3].numpy(), axis=1)
    assert error.max() < 0.05, error


def test_save_and_load_keep_the_search_box(synthetic, tmp_path):
    policy = heatmap_policy(synthetic)
    policy.translation_box.copy_(torch.tensor([[-0.4, -0.4, 0.0], [0.4, 0.4, 0.4]]))
    policy.save_pretrained(tmp_path / "p")
    loaded = VLAPolicy.from_pretrained(tmp_path / "p")
    torch.testing.assert_close(loaded.translation_box, policy.translation_box)
    policy.eval()
    batch = pinned_batch(synthetic)
    np.testing.assert_allclose(loaded.predict_chunk(batch), policy.predict_chunk(batch), atol=1e-5)


def test_a_heatmap_policy_reads_the_camera_poses(synthetic):
    inputs = PolicyRequirements.of(heatmap_policy(synthetic).config).inputs()
    assert {"extrinsics/corner", "intrinsics/wrist", "extrinsics/wrist"} <= set(inputs)
    assert "extrinsics/corner" not in PolicyRequirements.of(synthetic["policy"]().config).inputs()


def test_heatmap_translation_refuses_what_it_cannot_serve(synthetic):
    with pytest.raises(ConfigError, match="chunk=1"):
        PolicyConfig(translation="heatmap", chunk=4, replan_every=2)
    with pytest.raises(ConfigError, match="vision.encoder='conv'"):
        PolicyConfig(translation="heatmap", chunk=1, replan_every=1, vision={"encoder": "vit"})
    with pytest.raises(ConfigError, match="unknown translation 'voxels'"):
        PolicyConfig(translation="voxels")
    spec = synthetic["spec"](action_dim=4)  # actions a0..a3: no world position to find
    cfg = synthetic["config"]("l1", chunk=1, replan_every=1, translation="heatmap")
    with pytest.raises(ConfigError, match=r"begin with a world-frame position x, y, z .* \['a0', 'a1', 'a2', 'a3'\]"):
        build_policy(cfg, spec, synthetic["stats"](spec), ["pick"])

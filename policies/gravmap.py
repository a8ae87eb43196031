"""GravMAD's GravMap, drawn into the cameras: where the current sub-goal is, as two extra image channels.

GravMAD (Chen et al., ICLR 2025) conditions its policy on the next sub-goal (a keypose where the gripper's
contact with the world changes, envs/rlbench_like/subgoals.py) through two voxel maps built on VoxPoser's
value maps: a cost map, lower near the sub-goal position, and a gripper map holding the sub-goal's gripper
openness around it. We evaluate both maps at the world point behind every pixel (depth back-projected
through the camera's K and extrinsics) and hand them to the conv encoder and the heatmap decoder as two
channels beside RGB, one of the two routes issue #12 allows (the other being Ego3D points):

    cost    = min(1, |p - g| / COST_RANGE)       VoxPoser's normalised Euclidean distance transform, linear
                                                 in distance; its normaliser (the largest distance in a
                                                 ~1 m workspace grid) becomes a fixed 1 m here
    gripper = g_open inside the cube |p - g|_inf <= GRIPPER_RADIUS, else NEUTRAL_OPENNESS

Differences from GravMAD, and why: GravMAD's gripper map holds the current openness outside the cube; the
policy already reads that in its proprioception, so outside the cube the channel says nothing (0.5). And
GravMAD encodes the voxel map as one point-cloud token; channels keep the map aligned with the pixels the
heatmap decoder scores, which is what a sub-goal position should inform. docs/gravmad_reference.md has the
sources.
"""

from __future__ import annotations

import torch

COST_RANGE = 1.0  # metres at which the cost map reaches 1
GRIPPER_RADIUS = 0.03  # half-size of the gripper map's cube (GravMAD's prompts use 1-3 cm regions)
NEUTRAL_OPENNESS = 0.5  # the gripper channel away from the sub-goal: neither open (1) nor closed (0)
CHANNELS = 2  # cost, gripper


def backproject_pixels(depth: torch.Tensor, intrinsics: torch.Tensor, extrinsics: torch.Tensor) -> torch.Tensor:
    """World points behind every pixel centre: depth (N, H, W) metres along the optical axis, K (N, 3, 3),
    camera-to-world (N, 4, 4) with OpenCV axes -> (N, H, W, 3)."""
    n, h, w = depth.shape
    v = torch.arange(h, dtype=depth.dtype, device=depth.device) + 0.5
    u = torch.arange(w, dtype=depth.dtype, device=depth.device) + 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    uv1 = torch.stack([uu, vv, torch.ones_like(uu)], dim=-1).reshape(-1, 3)  # (H*W, 3)
    rays = torch.einsum("nij,pj->npi", torch.linalg.inv(intrinsics.to(depth.dtype)), uv1)  # z = 1
    in_camera = rays * depth.reshape(n, -1, 1)
    rotation, origin = extrinsics[:, :3, :3].to(depth.dtype), extrinsics[:, :3, 3].to(depth.dtype)
    world = torch.einsum("nij,npj->npi", rotation, in_camera) + origin[:, None]
    return world.reshape(n, h, w, 3)


def gravmap(points: torch.Tensor, position: torch.Tensor, is_open: torch.Tensor) -> torch.Tensor:
    """The cost and gripper channels (N, 2, H, W) at world points (N, H, W, 3), for sub-goals at `position`
    (N, 3) with gripper openness `is_open` (N,) (1 open, 0 closed)."""
    offset = points - position[:, None, None]
    cost = (offset.norm(dim=-1) / COST_RANGE).clamp(max=1.0)
    near = offset.abs().amax(dim=-1) <= GRIPPER_RADIUS
    gripper = torch.where(near, is_open.to(points.dtype)[:, None, None], torch.full_like(cost, NEUTRAL_OPENNESS))
    return torch.stack([cost, gripper], dim=1)

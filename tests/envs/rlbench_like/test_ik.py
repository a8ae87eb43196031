"""IK reaches random reachable targets; the rotation helpers are consistent with each other."""

from __future__ import annotations

import numpy as np
import pytest

from polyact.envs.rlbench_like.ik import ArmIK
from polyact.envs.rlbench_like.rotations import (
    canonical,
    euler_to_quat,
    quat_conj,
    quat_mul,
    quat_to_euler,
    quat_to_rotvec,
    rotation_error,
    rotvec_to_quat,
    slerp,
)
from polyact.envs.rlbench_like.scene import ARM_JOINTS, HOME_QPOS, build_model


@pytest.fixture(scope="module")
def ik() -> ArmIK:
    return ArmIK(build_model(lambda spec: None), ARM_JOINTS, "tcp", HOME_QPOS)


def test_home_pose_points_down_with_identity_orientation(ik):
    pos, quat = ik.fk(HOME_QPOS)
    np.testing.assert_allclose(pos, [0.463, 0.0, 0.413], atol=2e-3)
    assert np.linalg.norm(rotation_error(np.array([1.0, 0, 0, 0]), quat)) < 1e-6


def test_ik_reaches_random_reachable_targets(ik):
    """Targets are the forward kinematics of random postures around home, so each one is reachable."""
    rng = np.random.default_rng(0)
    for _ in range(30):
        q_goal = np.clip(HOME_QPOS + rng.uniform(-0.5, 0.5, 7), ik.lower, ik.upper)
        pos, quat = ik.fk(q_goal)
        result = ik.solve(pos, quat, HOME_QPOS, max_iters=200)
        reached_pos, reached_quat = ik.fk(result.q)
        assert result.converged
        assert np.linalg.norm(reached_pos - pos) < 1e-3
        assert np.linalg.norm(rotation_error(quat, reached_quat)) < 1e-2
        assert np.all(result.q >= ik.lower) and np.all(result.q <= ik.upper)


def test_ik_reports_an_unreachable_target(ik):
    result = ik.solve(np.array([1.5, 0.0, 0.3]), np.array([1.0, 0, 0, 0]), HOME_QPOS)
    assert not result.converged and result.pos_error > 0.3


def test_rotation_helpers_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        rpy = rng.uniform([-np.pi, -1.5, -np.pi], [np.pi, 1.5, np.pi])
        q = euler_to_quat(rpy)
        assert np.linalg.norm(rotation_error(euler_to_quat(quat_to_euler(q)), q)) < 1e-9
        v = rng.uniform(-1.5, 1.5, 3)  # norm below pi: the rotation vector is unique
        np.testing.assert_allclose(quat_to_rotvec(rotvec_to_quat(v)), v, atol=1e-9)
        a, b = canonical(rng.normal(size=4)), canonical(rng.normal(size=4))
        np.testing.assert_allclose(canonical(slerp(a, b, 1.0)), canonical(b), atol=1e-9)
        np.testing.assert_allclose(canonical(slerp(a, b, 0.0)), a, atol=1e-9)
        # rotation_error(a, b) rotates b onto a
        np.testing.assert_allclose(canonical(quat_mul(rotvec_to_quat(rotation_error(a, b)), b)), a, atol=1e-9)
        np.testing.assert_allclose(quat_mul(a, quat_conj(a)), [1, 0, 0, 0], atol=1e-12)

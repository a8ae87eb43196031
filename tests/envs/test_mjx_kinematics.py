"""The JAX twins of the arm's rotations, forward kinematics and IK against the numpy/MuJoCo originals."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from polyact.envs.rlbench_like import rotations
from polyact.envs.rlbench_like.ik import ArmIK
from polyact.envs.rlbench_like.mjx import rotations as jrot
from polyact.envs.rlbench_like.mjx.batch import enable_x64
from polyact.envs.rlbench_like.mjx.kinematics import ArmChain
from polyact.envs.rlbench_like.scene import ARM_JOINTS, HOME_QPOS, build_model


@pytest.fixture(scope="module")
def arm():
    enable_x64()
    model = build_model(lambda spec: None)
    return ArmIK(model, ARM_JOINTS, "tcp", HOME_QPOS), ArmChain.from_model(model, ARM_JOINTS, "tcp")


def test_rotations_match_numpy():
    enable_x64()
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rotations.canonical(rng.normal(size=4)), rotations.canonical(rng.normal(size=4))
        rpy = rng.uniform(-1.5, 1.5, 3)
        np.testing.assert_allclose(jrot.quat_mul(a, b), rotations.quat_mul(a, b), atol=1e-12)
        np.testing.assert_allclose(jrot.rotation_error(a, b), rotations.rotation_error(a, b), atol=1e-9)
        np.testing.assert_allclose(jrot.euler_to_quat(rpy), rotations.euler_to_quat(rpy), atol=1e-12)
    np.testing.assert_allclose(jrot.rotation_error(a, a), np.zeros(3), atol=1e-12)


def test_forward_kinematics_match_mujoco(arm):
    ik, chain = arm
    rng = np.random.default_rng(1)
    for _ in range(5):
        q = rng.uniform(ik.lower, ik.upper)
        pos, quat = ik.fk(q)
        jpos, jquat = chain.fk(q)
        np.testing.assert_allclose(jpos, pos, atol=1e-9)
        assert np.linalg.norm(rotations.rotation_error(np.asarray(jquat), quat)) < 1e-9


def test_ik_solves_as_the_cpu_solver(arm):
    """From the same seed toward the same pose, both solvers reach the same joints (same iterations)."""
    ik, chain = arm
    solve = jax.jit(lambda p, r, s: chain.solve(p, r, s, HOME_QPOS, 20))
    rng = np.random.default_rng(2)
    home_pos, home_quat = ik.fk(HOME_QPOS)
    for _ in range(4):
        pos = home_pos + rng.uniform(-0.08, 0.08, 3)
        quat = rotations.quat_mul(rotations.euler_to_quat(rng.uniform(-0.3, 0.3, 3)), home_quat)
        ref = ik.solve(pos, quat, HOME_QPOS, max_iters=20)
        q, converged = solve(pos, quat, HOME_QPOS)
        assert bool(converged) == ref.converged
        np.testing.assert_allclose(q, ref.q, atol=1e-7)

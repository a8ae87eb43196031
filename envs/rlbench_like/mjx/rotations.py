"""The quaternion helpers of ../rotations.py in JAX (w, x, y, z; the same conventions), for the arm's
control and IK inside a jitted step. Each mirrors the numpy function of the same name; the tests check
them against it."""

from __future__ import annotations

import jax.numpy as jnp

_EPS = 1e-12


def quat_mul(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """The Hamilton product a * b (apply b, then a)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return jnp.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_conj(q: jnp.ndarray) -> jnp.ndarray:
    return q * jnp.array([1.0, -1.0, -1.0, -1.0])


def canonical(q: jnp.ndarray) -> jnp.ndarray:
    q = q / jnp.linalg.norm(q)
    return jnp.where(q[0] < 0, -q, q)


def axis_angle(axis: jnp.ndarray, angle: jnp.ndarray) -> jnp.ndarray:
    axis = axis / jnp.linalg.norm(axis)
    return jnp.concatenate([jnp.cos(angle / 2)[None], jnp.sin(angle / 2) * axis])


def quat_to_rotvec(q: jnp.ndarray) -> jnp.ndarray:
    q = canonical(q)
    s = jnp.linalg.norm(q[1:])
    safe = jnp.where(s < _EPS, 1.0, s)
    return jnp.where(s < _EPS, jnp.zeros(3), 2.0 * jnp.arctan2(s, q[0]) * q[1:] / safe)


def rotation_error(target: jnp.ndarray, current: jnp.ndarray) -> jnp.ndarray:
    """World-frame rotation vector that turns `current` into `target`."""
    return quat_to_rotvec(quat_mul(target, quat_conj(current)))


def euler_to_quat(rpy: jnp.ndarray) -> jnp.ndarray:
    """Extrinsic roll (x), pitch (y), yaw (z), applied in that order."""
    qx = axis_angle(jnp.array([1.0, 0.0, 0.0]), rpy[0])
    qy = axis_angle(jnp.array([0.0, 1.0, 0.0]), rpy[1])
    qz = axis_angle(jnp.array([0.0, 0.0, 1.0]), rpy[2])
    return quat_mul(qz, quat_mul(qy, qx))

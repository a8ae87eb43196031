"""The arm's forward kinematics, site Jacobian and IK in JAX: the solver of ../ik.py (damped least
squares with a null-space pull toward the posture, the same settings), batched by vmap.

Why not mjx.kinematics inside the IK loop: it would recompute every body of the scene twenty times a
control step; the tool-centre point depends on the seven arm joints alone, so the chain from the world
to the tcp site is read from the compiled MjModel once (offsets, joint axes, limits: nothing copied from
the XML) and evaluated on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from polyact.envs.rlbench_like.ik import DAMPING, MAX_DQ, POS_TOL, POSTURE_GAIN, ROT_TOL
from polyact.envs.rlbench_like.mjx.rotations import canonical, rotation_error


@dataclass(frozen=True)
class ArmChain:
    """The bodies from the world to `site`'s body: offsets (B, 3), (B, 4), and for each arm joint the
    index of its body in the chain, its axis and anchor (in that body's frame) and its limits."""

    body_pos: np.ndarray
    body_quat: np.ndarray
    joint_body: tuple[int, ...]
    joint_axis: np.ndarray  # (J, 3)
    joint_anchor: np.ndarray  # (J, 3)
    lower: np.ndarray  # (J,)
    upper: np.ndarray
    site_pos: np.ndarray
    site_quat: np.ndarray

    @classmethod
    def from_model(cls, model: mujoco.MjModel, joints: tuple[str, ...], site: str) -> ArmChain:
        sid = model.site(site).id
        chain, b = [], int(model.site_bodyid[sid])
        while b != 0:
            chain.append(b)
            b = int(model.body_parentid[b])
        chain.reverse()
        jids = [model.joint(j).id for j in joints]
        for b in chain:  # the chain must move with the named joints only
            for j in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b]):
                if j not in jids or model.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE:
                    raise ValueError(f"body {model.body(b).name} has joint {model.joint(j).name}: not an arm hinge")
        return cls(
            body_pos=model.body_pos[chain].copy(),
            body_quat=model.body_quat[chain].copy(),
            joint_body=tuple(chain.index(int(model.jnt_bodyid[j])) for j in jids),
            joint_axis=model.jnt_axis[jids].copy(),
            joint_anchor=model.jnt_pos[jids].copy(),
            lower=model.jnt_range[jids, 0].copy(),
            upper=model.jnt_range[jids, 1].copy(),
            site_pos=model.site_pos[sid].copy(),
            site_quat=model.site_quat[sid].copy(),
        )

    def frames(self, q: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """(site position (3,), site quaternion (4,), joint world axes (J, 3), joint world anchors (J, 3)).

        In matrices, a few dozen array operations: the same chain in quaternion helpers (rotations.py,
        scalar arithmetic) was about 3,800 operations, and under vmap on this CPU one call took 2.7 s."""
        joint_of = {b: i for i, b in enumerate(self.joint_body)}
        pos, rot, quat = jnp.zeros(3), jnp.eye(3), jnp.array([1.0, 0.0, 0.0, 0.0])
        axes, anchors = [], []
        for b in range(len(self.body_pos)):
            pos = pos + rot @ self.body_pos[b]
            rot, quat = rot @ _matrix(self.body_quat[b]), _right(self.body_quat[b]) @ quat
            if b in joint_of:  # a hinge about its anchor, as MuJoCo's mj_kinematics
                i = joint_of[b]
                axis = self.joint_axis[i] / np.linalg.norm(self.joint_axis[i])
                anchor = pos + rot @ self.joint_anchor[i]
                k = _cross_matrix(axis)  # Rodrigues; the quaternion (cos q/2, sin q/2 axis)
                rot = rot @ (np.eye(3) + jnp.sin(q[i]) * k + (1.0 - jnp.cos(q[i])) * (k @ k))
                quat = (jnp.cos(q[i] / 2) * np.eye(4) + jnp.sin(q[i] / 2) * _right(np.r_[0.0, axis])) @ quat
                pos = anchor - rot @ self.joint_anchor[i]
                axes.append(rot @ axis)
                anchors.append(anchor)
        site = pos + rot @ self.site_pos
        return site, canonical(_right(self.site_quat) @ quat), jnp.stack(axes), jnp.stack(anchors)

    def fk(self, q: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The tcp position (3,) and quaternion (4,) at joint positions q (7,)."""
        site, quat, _, _ = self.frames(q)
        return site, quat

    def solve(
        self, pos: jnp.ndarray, quat: jnp.ndarray, seed: jnp.ndarray, posture: jnp.ndarray, max_iters: int
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """(q (7,), converged ()) as ArmIK.solve: iterate from `seed` until within tolerance or max_iters."""
        lower, upper = jnp.asarray(self.lower), jnp.asarray(self.upper)
        eye6, eye_j = jnp.eye(6), jnp.eye(len(self.lower))

        def error(q):
            site, cur, axes, anchors = self.frames(q)
            err = jnp.concatenate([pos - site, rotation_error(quat, cur)])
            done = (jnp.linalg.norm(err[:3]) < POS_TOL) & (jnp.linalg.norm(err[3:]) < ROT_TOL)
            return err, done, site, axes, anchors

        def body(carry):
            i, q, _ = carry
            err, done, site, axes, anchors = error(q)
            jac = jnp.concatenate([jnp.cross(axes, site - anchors).T, axes.T])  # (6, 7), as mj_jacSite
            jjt = jac @ jac.T + DAMPING**2 * eye6
            dq = jac.T @ jnp.linalg.solve(jjt, err)
            null = eye_j - jac.T @ jnp.linalg.solve(jjt, jac)
            dq = dq + null @ (POSTURE_GAIN * (posture - q))
            step = jnp.linalg.norm(dq)
            dq = jnp.where(step > MAX_DQ, dq * (MAX_DQ / step), dq)
            return i + 1, jnp.where(done, q, jnp.clip(q + dq, lower, upper)), done

        q0 = jnp.clip(seed, lower, upper)
        _, q, _ = jax.lax.while_loop(lambda c: (c[0] < max_iters) & ~c[2], body, (0, q0, False))
        return q, error(q)[1]


def _right(b: np.ndarray) -> np.ndarray:
    """The matrix M with quat_mul(a, b) == M @ a."""
    w, x, y, z = b
    return np.array([[w, -x, -y, -z], [x, w, z, -y], [y, -z, w, x], [z, y, -x, w]])


def _matrix(quat: np.ndarray) -> np.ndarray:
    """The rotation matrix of a unit quaternion."""
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=np.float64))
    return mat.reshape(3, 3)


def _cross_matrix(v: np.ndarray) -> np.ndarray:
    """K with K @ u == cross(v, u)."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])

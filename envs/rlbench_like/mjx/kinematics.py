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
from polyact.envs.rlbench_like.mjx.rotations import axis_angle, canonical, quat_mul, rotate, rotation_error


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
        """(site position (3,), site quaternion (4,), joint world axes (J, 3), joint world anchors (J, 3))."""
        joint_of = {b: i for i, b in enumerate(self.joint_body)}
        pos, quat = jnp.zeros(3), jnp.array([1.0, 0.0, 0.0, 0.0])
        axes, anchors = [], []
        for b in range(len(self.body_pos)):
            pos = pos + rotate(quat, jnp.asarray(self.body_pos[b]))
            quat = quat_mul(quat, jnp.asarray(self.body_quat[b]))
            if b in joint_of:  # a hinge about its anchor, as MuJoCo's mj_kinematics
                i = joint_of[b]
                anchor = pos + rotate(quat, jnp.asarray(self.joint_anchor[i]))
                quat = quat_mul(quat, axis_angle(jnp.asarray(self.joint_axis[i]), q[i]))
                pos = anchor - rotate(quat, jnp.asarray(self.joint_anchor[i]))
                axes.append(rotate(quat, jnp.asarray(self.joint_axis[i])))
                anchors.append(anchor)
        site = pos + rotate(quat, jnp.asarray(self.site_pos))
        return site, canonical(quat_mul(quat, jnp.asarray(self.site_quat))), jnp.stack(axes), jnp.stack(anchors)

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

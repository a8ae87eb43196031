"""Inverse kinematics of the arm's tool centre point: damped least squares with a posture bias.

Why our own solver rather than `mink`: the one problem here is a single 6-D frame target over seven
joints with box limits, which damped least squares plus a null-space pull toward a comfortable posture
solves in a few iterations (warm-started from the previous command, usually one or two). mink 0.0.13
would add a QP solver dependency for no gain, and mink 1.x needs a newer mujoco than metaworld pins.
The solver works on its own MjData, so it never disturbs the simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from polyact.envs.rlbench_like.rotations import mat_to_quat, rotation_error

# The solver's settings, shared with its JAX twin (mjx/kinematics.py) so both backends solve alike.
DAMPING = 0.02
POSTURE_GAIN = 0.05
POS_TOL = 5e-4  # m
ROT_TOL = 5e-3  # rad
MAX_DQ = 0.5  # rad: the largest joint-space step of one iteration


@dataclass(frozen=True)
class IKResult:
    q: np.ndarray  # (7,) joint positions within limits
    pos_error: float  # metres, at q
    rot_error: float  # radians, at q
    converged: bool


class ArmIK:
    """Solves tcp pose -> joint positions for the seven arm joints of a compiled rlbench_like model."""

    def __init__(
        self,
        model: mujoco.MjModel,
        joints: tuple[str, ...],
        site: str,
        posture: np.ndarray,
        damping: float = DAMPING,
        posture_gain: float = POSTURE_GAIN,
    ):
        self.model = model
        self.data = mujoco.MjData(model)
        self._qadr = np.array([model.joint(j).qposadr[0] for j in joints])
        self._dofadr = np.array([model.joint(j).dofadr[0] for j in joints])
        self._site = model.site(site).id
        self.lower = model.jnt_range[[model.joint(j).id for j in joints], 0].copy()
        self.upper = model.jnt_range[[model.joint(j).id for j in joints], 1].copy()
        self.posture = np.asarray(posture, dtype=np.float64)
        self._damping2 = damping**2
        self._posture_gain = posture_gain
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The tcp position (3,) and quaternion (4,) at joint positions q."""
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._site].copy(), mat_to_quat(self.data.site_xmat[self._site])

    def solve(
        self,
        pos: np.ndarray,
        quat: np.ndarray,
        seed: np.ndarray,
        max_iters: int = 50,
        pos_tol: float = POS_TOL,
        rot_tol: float = ROT_TOL,
    ) -> IKResult:
        """Joint positions that put the tcp at (pos, quat), starting from `seed` (the last command)."""
        q = np.clip(np.asarray(seed, dtype=np.float64), self.lower, self.upper)
        for _ in range(max_iters):
            cur_pos, cur_quat = self.fk(q)
            err = np.concatenate([pos - cur_pos, rotation_error(quat, cur_quat)])
            if np.linalg.norm(err[:3]) < pos_tol and np.linalg.norm(err[3:]) < rot_tol:
                return IKResult(q, float(np.linalg.norm(err[:3])), float(np.linalg.norm(err[3:])), True)
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self._site)
            jac = np.vstack([self._jacp[:, self._dofadr], self._jacr[:, self._dofadr]])  # (6, 7)
            jjt = jac @ jac.T + self._damping2 * np.eye(6)
            dq = jac.T @ np.linalg.solve(jjt, err)
            # Null-space pull toward the posture keeps the elbow up and the wrist away from its limits.
            null = np.eye(len(q)) - jac.T @ np.linalg.solve(jjt, jac)
            dq += null @ (self._posture_gain * (self.posture - q))
            step = np.linalg.norm(dq)
            if step > MAX_DQ:
                dq *= MAX_DQ / step
            q = np.clip(q + dq, self.lower, self.upper)
        cur_pos, cur_quat = self.fk(q)
        pos_err = float(np.linalg.norm(pos - cur_pos))
        rot_err = float(np.linalg.norm(rotation_error(quat, cur_quat)))
        return IKResult(q, pos_err, rot_err, pos_err < pos_tol and rot_err < rot_tol)

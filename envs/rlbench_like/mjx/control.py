"""One control step of the arm's `default` action mode (end-effector delta pose) in JAX: arm.py's
Arm.step, _pose_targets and _servo for one environment, with the same constants and the same IK, so
that vmap runs thousands of them at once. See arm.py for why each limit is there."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from mujoco import mjx

from polyact.envs.rlbench_like.arm import (
    FINGER_TRAVEL,
    LEASH,
    MAX_JOINT_STEP,
    SUBSTEPS,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
)
from polyact.envs.rlbench_like.mjx.kinematics import ArmChain
from polyact.envs.rlbench_like.mjx.rotations import canonical, euler_to_quat, quat_mul
from polyact.envs.rlbench_like.scene import HOME_QPOS

IK_ITERS = 20  # Arm._pose_targets' budget per control step


class ArmState(NamedTuple):
    """What Arm keeps between control steps: the servo targets and the commanded tcp pose."""

    q_cmd: jnp.ndarray  # (7,)
    target_pos: jnp.ndarray  # (3,)
    target_quat: jnp.ndarray  # (4,)


class ArmIds(NamedTuple):
    """Indices into mjx.Data of the arm's actuators and tcp site (static)."""

    arm_act: tuple[int, ...]
    grip_act: int
    tcp: int


def home_state(chain: ArmChain) -> ArmState:
    pos, quat = chain.fk(jnp.asarray(HOME_QPOS))
    return ArmState(jnp.asarray(HOME_QPOS), pos, quat)


def pose_targets(
    chain: ArmChain, tcp: jnp.ndarray, arm: ArmState, pos: jnp.ndarray, quat: jnp.ndarray
) -> tuple[jnp.ndarray, ArmState]:
    """Joint targets toward a commanded tcp pose kept reachable, and the re-anchored command."""
    pos = jnp.clip(pos, WORKSPACE_LOW, WORKSPACE_HIGH)
    lead = pos - tcp
    dist = jnp.linalg.norm(lead)
    pos = jnp.where(dist > LEASH, tcp + lead * (LEASH / jnp.maximum(dist, LEASH)), pos)
    quat = canonical(quat)
    q, converged = chain.solve(pos, quat, arm.q_cmd, jnp.asarray(HOME_QPOS), IK_ITERS)
    step = jnp.max(jnp.abs(q - arm.q_cmd))
    q = jnp.where(step > MAX_JOINT_STEP, arm.q_cmd + (q - arm.q_cmd) * (MAX_JOINT_STEP / step), q)
    fk_pos, fk_quat = chain.fk(q)
    ok = converged & (step <= MAX_JOINT_STEP)
    return q, ArmState(q, jnp.where(ok, pos, fk_pos), jnp.where(ok, quat, fk_quat))


class Ramp(NamedTuple):
    """The arm's servo targets at the start and the end of a control step."""

    q_old: jnp.ndarray  # (7,)
    q_new: jnp.ndarray  # (7,)


def command(
    d: mjx.Data, arm: ArmState, action: jnp.ndarray, chain: ArmChain, ids: ArmIds
) -> tuple[mjx.Data, ArmState, Ramp]:
    """The first half of a control step for one 7-D delta action (dx, dy, dz, droll, dpitch, dyaw,
    gripper): the IK toward the commanded pose and the gripper's command. `substep` then runs the
    SUBSTEPS physics steps (k = 0 .. SUBSTEPS-1)."""
    pos = arm.target_pos + action[:3]
    quat = canonical(quat_mul(euler_to_quat(action[3:6]), arm.target_quat))
    q_old = arm.q_cmd
    q_new, arm = pose_targets(chain, d.site_xpos[ids.tcp], arm, pos, quat)
    d = d.replace(ctrl=d.ctrl.at[ids.grip_act].set(FINGER_TRAVEL * (1.0 - action[6]) / 2.0))
    return d, arm, Ramp(q_old, q_new)


def substep(m: mjx.Model, d: mjx.Data, ramp: Ramp, k: jnp.ndarray, ids: ArmIds) -> mjx.Data:
    """Physics step k of a control step, the servo targets ramped over the step as Arm._servo.

    Not a lax.fori_loop over k inside one jitted control step: a loop body receives the model's arrays
    as operands rather than constants, and one physics step then cost as much as with the model passed
    as an argument (see batch.py); the caller loops in Python over one jitted substep."""
    act = jnp.asarray(ids.arm_act)
    ctrl = d.ctrl.at[act].set(ramp.q_old + (ramp.q_new - ramp.q_old) * ((k + 1) / SUBSTEPS))
    return mjx.step(m, d.replace(ctrl=ctrl))

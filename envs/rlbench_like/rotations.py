"""Unit-quaternion helpers (w, x, y, z) for end-effector poses, in numpy so they are easy to test.

MuJoCo's `mju_*` functions work in place on single quaternions; these return new arrays and keep the
conventions of this suite in one place: Euler angles are extrinsic roll-pitch-yaw about the world x, y
and z axes, R = Rz(yaw) Ry(pitch) Rx(roll), and rotation errors are rotation vectors in the world frame.
"""

from __future__ import annotations

import numpy as np


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The Hamilton product a * b (apply b, then a)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


def canonical(q: np.ndarray) -> np.ndarray:
    """Normalised, with w >= 0: q and -q are one rotation, and policies should see one of them."""
    q = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return -q if q[0] < 0 else q


def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def yaw_quat(yaw: float) -> np.ndarray:
    return axis_angle(np.array([0.0, 0.0, 1.0]), yaw)


def rotvec_to_quat(v: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    return axis_angle(v / angle, angle)


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """The rotation vector of q, its angle in [0, pi]."""
    q = canonical(q)
    s = np.linalg.norm(q[1:])
    if s < 1e-12:
        return np.zeros(3)
    return 2.0 * np.arctan2(s, q[0]) * q[1:] / s


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame rotation vector that turns `current` into `target`."""
    return quat_to_rotvec(quat_mul(target, quat_conj(current)))


def euler_to_quat(rpy: np.ndarray) -> np.ndarray:
    """Extrinsic roll (x), pitch (y), yaw (z), applied in that order."""
    roll, pitch, yaw = rpy
    qx = axis_angle(np.array([1.0, 0.0, 0.0]), roll)
    qy = axis_angle(np.array([0.0, 1.0, 0.0]), pitch)
    qz = axis_angle(np.array([0.0, 0.0, 1.0]), yaw)
    return quat_mul(qz, quat_mul(qy, qx))


def quat_to_euler(q: np.ndarray) -> np.ndarray:
    """Inverse of euler_to_quat, pitch in [-pi/2, pi/2]."""
    w, x, y, z = canonical(q)
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from a (t = 0) to b (t = 1) along the shorter arc."""
    a, b = canonical(a), np.asarray(b, dtype=np.float64) / np.linalg.norm(b)
    if np.dot(a, b) < 0:
        b = -b
    return quat_mul(rotvec_to_quat(t * quat_to_rotvec(quat_mul(b, quat_conj(a)))), a)


def mat_to_quat(mat: np.ndarray) -> np.ndarray:
    """A 3x3 rotation matrix (or its 9 entries, row-major, as MuJoCo stores xmat) as a quaternion."""
    m = np.asarray(mat, dtype=np.float64).reshape(3, 3)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    return canonical(np.array(q))

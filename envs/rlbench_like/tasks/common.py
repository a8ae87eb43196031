"""Shared pieces of task scripts and layouts: scattering props on the table, pick and place moves."""

from __future__ import annotations

import numpy as np

from polyact.envs.rlbench_like.tasks.base import CLOSE, OPEN, Script, Waypoint

# Where props may stand: in front of the robot, inside its comfortable reach.
TABLE_X = (0.33, 0.66)
TABLE_Y = (-0.28, 0.28)
APPROACH = 0.10  # m above a grasp or place pose to start the vertical approach
SAFE_Z = 0.22  # travel height between picks and places
GRIP_STEPS = 6  # dwell while the fingers close or open (0.3 s)


def scatter(
    rng: np.random.Generator,
    n: int,
    min_dist: float,
    x: tuple[float, float] = TABLE_X,
    y: tuple[float, float] = TABLE_Y,
    avoid: list[tuple[np.ndarray, float]] | None = None,
) -> list[np.ndarray]:
    """n random (x, y) points at least `min_dist` apart and clear of each (centre, radius) in `avoid`."""
    avoid = list(avoid or [])
    for _ in range(1000):
        points: list[np.ndarray] = []
        for _ in range(200):
            p = np.array([rng.uniform(*x), rng.uniform(*y)])
            if all(np.linalg.norm(p - q) >= min_dist for q in points) and all(
                np.linalg.norm(p - c[:2]) >= r for c, r in avoid
            ):
                points.append(p)
                if len(points) == n:
                    return points
    raise RuntimeError(f"cannot scatter {n} props {min_dist} m apart in x {x}, y {y}")


def grasp_yaw(object_yaw: float, symmetry: float = np.pi / 2) -> float:
    """The gripper yaw closest to 0 that matches an object symmetric under turns of `symmetry`."""
    return float((object_yaw + symmetry / 2) % symmetry - symmetry / 2)


def pick(pos: np.ndarray, yaw: float, lift_to: float = SAFE_Z) -> Script:
    """Open above `pos` (the tcp at grasp), descend, close, lift straight up to `lift_to`."""
    pos = np.asarray(pos, dtype=np.float64)
    above = pos + [0.0, 0.0, APPROACH]
    yield Waypoint(above, yaw, OPEN)
    yield Waypoint(pos, yaw, OPEN, speed=0.3)
    yield Waypoint(pos, yaw, CLOSE, dwell=GRIP_STEPS)
    yield Waypoint(np.array([pos[0], pos[1], max(lift_to, pos[2] + 0.05)]), yaw, CLOSE, speed=0.3)


def place(pos: np.ndarray, yaw: float, retreat_to: float = SAFE_Z) -> Script:
    """Carry (closed) above `pos`, descend, open, and rise to `retreat_to`."""
    pos = np.asarray(pos, dtype=np.float64)
    yield Waypoint(np.array([pos[0], pos[1], max(pos[2] + APPROACH, SAFE_Z)]), yaw, CLOSE)
    yield Waypoint(pos, yaw, CLOSE, speed=0.15)
    yield Waypoint(pos, yaw, OPEN, dwell=GRIP_STEPS)
    yield Waypoint(np.array([pos[0], pos[1], max(retreat_to, pos[2] + 0.05)]), yaw, OPEN, speed=0.3)

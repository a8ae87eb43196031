"""The safety layer between policy and robot: every command leaves here inside every configured limit.

For each control step it gets the policy's raw action (or a reason to hold) and the measured
end-effector position, and returns a `RobotCommand`:

1. a hold (zero velocity, gripper kept) when asked to hold, when the position is unknown, or when the
   action is not finite or absurd (|a| > max_abs_action): such actions never reach the robot, they
   are counted by reason;
2. otherwise the action in physical units (CommandConfig: displacement per step -> m/s, rad/s);
3. speed: the linear and angular velocity norms are scaled down to their maxima;
4. acceleration: the change from the previous command is scaled down to max_accel * dt;
5. workspace box: each velocity component is cut so that position + velocity * dt stays inside the box
   (outside it, motion may only lead back in). Cutting only shrinks components, so the speed limit
   still holds; it is the last word, so a stop at the boundary may decelerate faster than
   max_linear_accel; holds too (a stop is always allowed);
6. gripper: clipped to its range, then its change limited to max_gripper_rate * dt.

Pure numpy, so it is tested on fuzzed inputs without ROS (tests/deploy/test_safety.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from polyact.deploy.config import CommandConfig, SafetyConfig

ZERO3 = np.zeros(3)


@dataclass(frozen=True)
class RobotCommand:
    """One control step's command: end-effector velocity (world frame) and gripper."""

    linear: np.ndarray  # (3,) m/s
    angular: np.ndarray  # (3,) rad/s
    gripper: float | None  # None: no gripper command has been given yet
    hold: bool  # the robot is held (zero velocity) instead of following the policy
    reason: str  # "policy", or why the robot is held
    limited: tuple[str, ...] = field(default=())  # the limits that changed the policy's command


class SafetyFilter:
    """Turns raw actions into limited commands; remembers the previous command for rate limits."""

    def __init__(self, safety: SafetyConfig, command: CommandConfig, control_hz: float):
        self.cfg, self.map, self.dt = safety, command, 1.0 / control_hz
        self.low = np.asarray(safety.workspace_low, np.float64)
        self.high = np.asarray(safety.workspace_high, np.float64)
        self.last_linear, self.last_angular = ZERO3.copy(), ZERO3.copy()
        self.last_gripper: float | None = None
        self.holds: Counter[str] = Counter()  # hold reason -> control steps
        self.limited: Counter[str] = Counter()  # limit -> policy commands it changed
        self.rejected = 0  # actions that were not finite or absurd

    def invalid(self, action: np.ndarray) -> str | None:
        """Why a raw action must not reach the robot, or None."""
        action = np.asarray(action)
        if action.ndim != 1 or action.size <= max(self.map.indices()) or action.dtype.kind not in "biuf":
            return f"malformed action (shape {action.shape}, dtype {action.dtype}); expected a 1-D numeric vector"
        values = action[self.map.indices()].astype(np.float64)
        if not np.isfinite(values).all():
            return "non-finite action"
        if np.abs(values).max(initial=0.0) > self.cfg.max_abs_action:
            return f"absurd action (|a| > {self.cfg.max_abs_action:g})"
        return None

    def hold(self, reason: str) -> RobotCommand:
        """Zero velocity, gripper kept; the next policy command accelerates from rest."""
        self.holds[reason] += 1
        self.last_linear, self.last_angular = ZERO3.copy(), ZERO3.copy()
        return RobotCommand(ZERO3.copy(), ZERO3.copy(), self.last_gripper, True, reason)

    def __call__(self, action: np.ndarray | None, position: np.ndarray | None, hold: str | None = None) -> RobotCommand:
        """The command for one step: `action` (A,) raw units, `position` (3,) metres (world frame)."""
        if hold is None and action is None:
            hold = "no action"
        if hold is None and (position is None or not np.isfinite(position).all()):
            hold = "end-effector position unknown"
        if hold is None:
            hold = self.invalid(action)
            if hold is not None:
                self.rejected += 1
        if hold is not None:
            return self.hold(hold)
        a = np.asarray(action, np.float64)
        m, c, limited = self.map, self.cfg, []
        linear = a[m.linear] * m.linear_scale / self.dt
        angular = a[m.angular] * m.angular_scale / self.dt if m.angular else ZERO3.copy()
        linear = _limit_norm(linear, c.max_linear_speed, "speed", limited)
        angular = _limit_norm(angular, c.max_angular_speed, "angular_speed", limited)
        linear = self.last_linear + _limit_norm(
            linear - self.last_linear, c.max_linear_accel * self.dt, "accel", limited
        )
        angular = self.last_angular + _limit_norm(
            angular - self.last_angular, c.max_angular_accel * self.dt, "angular_accel", limited
        )
        p = np.asarray(position, np.float64)
        lo = np.minimum((self.low - p) / self.dt, 0.0)  # inside the box the interval holds 0:
        hi = np.maximum((self.high - p) / self.dt, 0.0)  # cutting can only shrink a component
        boxed = np.clip(linear, lo, hi)
        if not np.array_equal(boxed, linear):
            limited.append("workspace")
        gripper = self.last_gripper
        if m.gripper >= 0:
            wanted = m.gripper_offset + m.gripper_scale * a[m.gripper]
            gripper = float(np.clip(wanted, c.gripper_min, c.gripper_max))
            if gripper != wanted:
                limited.append("gripper_range")
            if self.last_gripper is not None:
                step = c.max_gripper_rate * self.dt
                rated = float(np.clip(gripper, self.last_gripper - step, self.last_gripper + step))
                if rated != gripper:
                    limited.append("gripper_rate")
                gripper = rated
        self.last_linear, self.last_angular, self.last_gripper = boxed, angular, gripper
        self.limited.update(limited)
        return RobotCommand(boxed, angular, gripper, False, "policy", tuple(limited))


def _limit_norm(v: np.ndarray, limit: float, name: str, limited: list[str]) -> np.ndarray:
    """`v` scaled down to norm `limit` (never above it after rounding), noting `name` if it was."""
    norm = float(np.linalg.norm(v))
    if norm <= limit:
        return v
    limited.append(name)
    scaled = v * (limit / norm)
    while np.linalg.norm(scaled) > limit:  # a last ulp of rounding must not exceed the limit
        scaled = scaled * (1 - 1e-12)
    return scaled

"""What a task is: props added to the scene, its variations, a reset, a success test on simulator
state, the privileged state its expert reads, and the expert's script of waypoints."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np

from polyact.envs.rlbench_like.rotations import axis_angle, quat_mul, yaw_quat
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.variations import Variation

OPEN, CLOSE = -1.0, 1.0  # gripper commands (the action's last entry)


@dataclass(frozen=True)
class Waypoint:
    """A tcp pose to reach by a minimum-jerk move, holding `gripper`, then `dwell` still steps.

    The orientation is the gripper pointing down turned by `yaw` about z, or `orientation` if given."""

    pos: np.ndarray
    yaw: float = 0.0
    gripper: float = OPEN
    speed: float = 0.4  # mean linear speed of the move, m/s (the peak is 1.875 times this)
    dwell: int = 2
    min_steps: int = 4
    orientation: np.ndarray | None = None

    @property
    def quat(self) -> np.ndarray:
        return yaw_quat(self.yaw) if self.orientation is None else self.orientation


def pointing(yaw: float, tilt: float) -> np.ndarray:
    """The tcp orientation of a gripper pointing along (cos yaw cos tilt, sin yaw cos tilt, -sin tilt), its
    fingers level: `tilt` below the horizontal (pi/2 is straight down). The Panda cannot point level and
    low in front of itself (its wrist would need to be behind its base), so side grasps are tilted."""
    return quat_mul(yaw_quat(yaw), axis_angle(np.array([0.0, 1.0, 0.0]), tilt - np.pi / 2))


Privileged = dict[str, Any]
Script = Iterator[Waypoint]


class Task(ABC):
    """One rlbench_like task. Subclasses are stateless between episodes except for what `reset` sets."""

    name: ClassVar[str]

    @abstractmethod
    def build(self, spec: mujoco.MjSpec) -> None:
        """Add the task's props to the scene."""

    @abstractmethod
    def variations(self) -> tuple[Variation, ...]:
        """Every variation, in a fixed order."""

    @abstractmethod
    def reset(self, sim: Sim, rng: np.random.Generator, variation: Variation) -> None:
        """Place and paint the props for this episode (the robot is already at home)."""

    @abstractmethod
    def success(self, sim: Sim) -> bool:
        """The task's success test on simulator state."""

    def after_step(self, sim: Sim) -> None:  # noqa: B027  (optional hook: most tasks keep no history)
        """Bookkeeping after every control step, for tasks whose success depends on history."""

    @abstractmethod
    def privileged(self, sim: Sim) -> Privileged:
        """Object state the scripted expert plans from (world frame)."""

    @abstractmethod
    def script(self, p: Callable[[], Privileged]) -> Script:
        """The expert's waypoints; `p()` gives the privileged state at the moment a waypoint is asked for."""

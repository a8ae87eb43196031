"""The safety layer: fuzzed policy outputs (NaN, inf, huge, malformed, out of workspace) and random
positions never yield a command outside any limit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyact.deploy.config import BridgeConfig, CommandConfig, SafetyConfig, SimRobotConfig, WatchdogConfig
from polyact.deploy.safety import SafetyFilter
from polyact.envs.config import EnvConfig
from polyact.errors import ConfigError

RATE = 10.0
SAFETY = SafetyConfig(
    max_linear_speed=0.2, max_linear_accel=1.0, max_angular_speed=0.5, max_angular_accel=2.0, max_gripper_rate=4.0
)
# 7-D actions: (dx, dy, dz, droll, dpitch, dyaw, gripper), as the RLBench-like arm's delta mode
COMMAND = CommandConfig(linear=[0, 1, 2], angular=[3, 4, 5], angular_scale=0.05, gripper=6)
EPS = 1e-9

values = st.one_of(
    st.floats(-2, 2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308, 9.99, 10.01, 0.0]),
)
actions = st.one_of(
    st.lists(values, min_size=7, max_size=7).map(np.array),
    st.lists(values, min_size=0, max_size=9).map(np.array),  # wrong lengths
    st.none(),
)
positions = st.one_of(
    st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3).map(np.array),  # inside and outside the box
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3).map(np.array),
    st.none(),
)
steps = st.lists(st.tuples(actions, positions, st.sampled_from([None, None, None, "e-stop latched"])), max_size=20)


def check(command, previous, position, dt: float, s: SafetyConfig) -> None:
    """Every limit of `s` on one command, given the previous command and the measured position."""
    for v in (command.linear, command.angular):
        assert v.shape == (3,) and np.isfinite(v).all()
    assert np.linalg.norm(command.linear) <= s.max_linear_speed + EPS
    assert np.linalg.norm(command.angular) <= s.max_angular_speed + EPS
    if command.hold:
        assert not command.linear.any() and not command.angular.any()
    else:
        p, low, high = position, np.array(s.workspace_low), np.array(s.workspace_high)
        after = p + command.linear * dt
        # inside, a step stays inside; outside, motion only leads back towards the box
        assert np.all((p < low) | (after >= low - EPS)) and np.all((p > high) | (after <= high + EPS))
        assert np.all((p >= low) | (command.linear >= 0)) and np.all((p <= high) | (command.linear <= 0))
        if "workspace" not in command.limited:
            assert np.linalg.norm(command.linear - previous.linear) <= s.max_linear_accel * dt + EPS
        assert np.linalg.norm(command.angular - previous.angular) <= s.max_angular_accel * dt + EPS
    if command.gripper is not None:
        assert s.gripper_min <= command.gripper <= s.gripper_max
        if previous.gripper is not None:
            assert abs(command.gripper - previous.gripper) <= s.max_gripper_rate * dt + EPS


@settings(max_examples=300, deadline=None)
@given(steps)
def test_fuzzed_actions_and_positions_never_leave_any_limit(sequence):
    safety = SafetyFilter(SAFETY, COMMAND, RATE)
    previous = safety.hold("start")
    for action, position, hold in sequence:
        command = safety(action, position, hold)
        check(command, previous, position, 1 / RATE, SAFETY)
        used = action[:7] if action is not None and action.size >= 7 else None  # what the 7 indices read
        sane = used is not None and np.isfinite(used).all() and np.abs(used).max() <= SAFETY.max_abs_action
        known = position is not None and np.isfinite(position).all()
        assert command.hold == (hold is not None or not sane or not known)
        previous = command


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(-1, 1), min_size=7, max_size=7), min_size=1, max_size=20))
def test_in_range_actions_inside_the_box_are_followed_up_to_the_limits(sequence):
    """Sane actions at a safe position: never held, and the command points where the action does."""
    safety = SafetyFilter(SAFETY, COMMAND, RATE)
    middle = (np.array(SAFETY.workspace_low) + np.array(SAFETY.workspace_high)) / 2
    for action in map(np.array, sequence):
        command = safety(action, middle)
        assert not command.hold
        wanted = action[:3] * COMMAND.linear_scale * RATE
        assert np.dot(command.linear, wanted) >= -EPS or "accel" in command.limited


def test_a_step_out_of_the_box_is_cut_at_the_wall():
    safety = SafetyFilter(SAFETY, CommandConfig(), RATE)
    wall = np.array([0.0, 0.7, SAFETY.workspace_low[2] + 0.001])
    command = safety(np.array([0.0, 0.0, -1.0, 0.0]), wall)  # 1 cm down, 1 mm above the floor
    assert command.linear[2] == pytest.approx(-0.001 * RATE) and "workspace" in command.limited


def test_rejected_actions_are_counted_by_reason():
    safety = SafetyFilter(SAFETY, CommandConfig(), RATE)
    here = np.array([0.0, 0.7, 0.2])
    assert safety(np.array([np.nan, 0, 0, 0]), here).reason == "non-finite action"
    assert safety(np.array([0, 11.0, 0, 0]), here).reason.startswith("absurd action")
    assert safety(np.zeros((2, 4)), here).reason.startswith("malformed action")
    assert safety.rejected == 3 and not safety(np.zeros(4), here).hold


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SafetyConfig(workspace_low=[0, 0, 0], workspace_high=[1, -1, 1]), "workspace_low < workspace_high"),
        (lambda: SafetyConfig(max_linear_speed=float("nan")), "safety.max_linear_speed"),
        (lambda: SafetyConfig(gripper_min=1, gripper_max=0), "gripper_min < gripper_max"),
        (lambda: CommandConfig(kind="twist_stampd"), "twist_stamped"),
        (lambda: CommandConfig(linear=[0, 1]), "3 action indices"),
        (lambda: CommandConfig(linear=[0, 1, 1]), "distinct"),
        (lambda: WatchdogConfig(max_observation_age_s=0), "watchdog.max_observation_age_s"),
        (lambda: BridgeConfig(state_source="joints"), "joint_state"),
        (lambda: BridgeConfig(ros_version=3), "1, 2"),
        (lambda: SimRobotConfig(env=EnvConfig(tasks="MT10")), "runs one Meta-World task"),
    ],
)
def test_bad_limits_are_refused_naming_what_is_valid(make, message):
    with pytest.raises(ConfigError, match=message):
        make()

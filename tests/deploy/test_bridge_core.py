"""The bridge core without ROS, on a manual clock: observation assembly, chunk timing, the loop's deadlines,
the watchdog and the e-stop. The policy's metadata is a real checkpoint's (conftest.py); its chunks are scripted."""

from __future__ import annotations

import copy
import importlib.util
import threading
import time
from typing import Any

import numpy as np
import pytest

from polyact.deploy.config import BridgeConfig, CommandConfig
from polyact.deploy.ros.core import Bridge
from polyact.errors import ConfigError

RATE = 10.0
K = np.array([[30, 0, 16], [0, 30, 16], [0, 0, 1]], np.float32)


class Scripted:
    """The checkpoint's metadata with chunks the test decides: chunk n holds n + 0.01 * index in dx."""

    def __init__(self, metadata: dict[str, Any]):
        self.metadata, self.connected = metadata, True
        self.chunk_shape = tuple(metadata["action"]["shape"])
        self.requests: list[list[dict[str, Any]]] = []
        self.fill: float | None = None  # every action value, when set (e.g. NaN)

    def infer(self, observations: list[dict[str, Any]]) -> np.ndarray:
        self.requests.append(observations)
        chunk = np.zeros(self.chunk_shape, np.float32)
        chunk[:, 0] = 0.1 * len(self.requests) + 0.01 * np.arange(len(chunk))
        if self.fill is not None:
            chunk[:] = self.fill
        return chunk


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig(served):
    clock, policy = Clock(), Scripted(served.metadata)
    bridge = Bridge(BridgeConfig(policy="ws://unused", control_hz=RATE), policy, clock=clock, wall=clock)
    yield bridge, policy, clock
    bridge.worker.stop()


def feed(bridge: Bridge, observation, position=(0.0, 0.7, 0.2)) -> None:
    s = bridge.sensors
    s.rgb("corner", observation(0)["rgb/corner"])
    s.depth("corner", observation(0)["depth/corner"])
    s.camera_info("corner", K, 32, 32)
    s.pose(position, (0.0, 0.0, 0.0, 1.0))
    s.gripper_state(1.0)
    s.goal([0.1, 0.8, 0.1])
    s.instruction("reach the goal")


def step(bridge: Bridge, clock: Clock, observation=None):
    """One control period later: fresh sensors (when given), a tick, and the policy's answer awaited."""
    clock.now += 1 / RATE
    if observation is not None:
        feed(bridge, observation)
    tick = bridge.tick()
    while bridge.worker.busy:
        time.sleep(0.001)
    return tick


def test_the_loop_follows_chunks_with_latency_compensation(rig, observation):
    bridge, policy, clock = rig
    assert step(bridge, clock).command.reason.startswith("waiting for rgb/corner")
    tick = step(bridge, clock, observation)  # step 2: the first request, planned from step 2
    assert tick.command.reason.startswith("no action")
    ticks = [step(bridge, clock, observation) for _ in range(6)]
    # chunk 1 planned at step 2 -> step 3 runs its index 1; replan_every=2, ahead=1: step 3 asks again
    assert [t.index for t in ticks] == [1, 1, 1, 1, 1, 1]
    assert all(not t.command.hold for t in ticks)
    dx = ticks[0].command.linear[0] / RATE  # metres in one period
    assert dx == pytest.approx((0.1 + 0.01) * CommandConfig().linear_scale)
    assert len(policy.requests[-1]) == 2  # the policy's history of 2 observations


def test_stale_sensors_hold_and_fresh_ones_resume(rig, observation):
    bridge, _, clock = rig
    for _ in range(4):
        step(bridge, clock, observation)
    clock.now += bridge.cfg.watchdog.max_observation_age_s
    tick = step(bridge, clock)
    assert tick.command.hold and tick.command.reason.startswith("stale observation")
    assert not tick.command.linear.any()
    step(bridge, clock, observation)
    assert not step(bridge, clock, observation).command.hold


def test_a_lost_connection_holds_within_the_period_and_drops_the_chunk(rig, observation):
    bridge, policy, clock = rig
    for _ in range(4):
        step(bridge, clock, observation)
    policy.connected = False
    tick = step(bridge, clock, observation)
    assert tick.command.hold and tick.command.reason == "policy connection lost"
    assert bridge.buffer.chunk is None and bridge.counts["connection_lost"] == 1
    policy.connected = True
    reasons = [step(bridge, clock, observation).command.reason for _ in range(3)]
    assert reasons[-1] == "policy"


def test_the_estop_latches_until_a_reset_while_released(rig, observation):
    bridge, _, clock = rig
    for _ in range(4):
        step(bridge, clock, observation)
    bridge.estop(True)
    bridge.estop(False)
    assert bridge.estopped
    assert all(step(bridge, clock, observation).command.reason == "e-stop latched" for _ in range(5))
    bridge.estop(True)
    assert not bridge.reset()  # refused while the e-stop still reads true
    bridge.estop(False)
    assert bridge.reset() and not bridge.estopped
    reasons = [step(bridge, clock, observation).command.reason for _ in range(3)]
    assert reasons[0] != "policy" and reasons[-1] == "policy"  # a fresh plan first


@pytest.mark.parametrize("fill", [np.nan, np.inf, 1e9])
def test_non_finite_or_absurd_chunks_never_reach_the_robot(rig, observation, fill):
    bridge, policy, clock = rig
    policy.fill = fill
    ticks = [step(bridge, clock, observation) for _ in range(6)]
    assert all(t.command.hold and not t.command.linear.any() for t in ticks)
    assert bridge.safety.rejected >= 3


def test_a_policy_that_stops_answering_leaves_the_robot_held(rig, observation):
    bridge, policy, clock = rig
    for _ in range(4):
        step(bridge, clock, observation)
    gate = threading.Event()
    policy.infer = lambda observations: gate.wait() and None  # hangs until the test ends
    reasons = []
    for _ in range(bridge.buffer.replan_every + 3):  # the chunk runs out; no new one comes
        clock.now += 1 / RATE
        feed(bridge, observation)
        reasons.append(bridge.tick().command.reason)
    gate.set()
    assert reasons[0] == "policy" and reasons[-1].startswith("no action")


def test_a_state_layout_that_does_not_fit_the_policy_is_refused(served):
    cfg = BridgeConfig(policy="ws://unused", state_orientation=True)
    with pytest.raises(ConfigError, match="state_orientation"):
        Bridge(cfg, Scripted(served.metadata))
    with pytest.raises(ConfigError, match="exceed the policy's actions"):
        Bridge(BridgeConfig(policy="ws://unused", command=CommandConfig(gripper=4)), Scripted(served.metadata))


def test_a_policy_that_reads_camera_poses_is_refused_with_the_way_out(served):
    metadata = copy.deepcopy(served.metadata)
    metadata["observation"]["extrinsics/corner"] = {"dtype": "float32", "shape": [4, 4]}
    with pytest.raises(ConfigError, match=r"camera poses \(extrinsics/corner.*polyact serve"):
        Bridge(BridgeConfig(policy="ws://unused"), Scripted(metadata))


def test_the_log_has_every_tick_and_the_period_statistics(rig, observation, tmp_path):
    bridge, _, clock = rig
    for _ in range(5):
        step(bridge, clock, observation)
    bridge.write_log(tmp_path / "log.jsonl")
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 6 and '"stats"' in lines[-1]
    assert bridge.stats()["period_ms_mean"] == pytest.approx(100.0)


class SleepyClock(Clock):
    """A clock that only `sleep` (overshooting by `overshoot` s, as a loaded machine does) and `work` move."""

    def __init__(self, overshoot: float):
        super().__init__()
        self.overshoot = overshoot

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.overshoot


def test_the_loop_keeps_absolute_deadlines_and_skips_ahead_after_an_overrun(served):
    clock = SleepyClock(overshoot=0.003)
    bridge = Bridge(
        BridgeConfig(policy="ws://unused", control_hz=RATE), Scripted(served.metadata), clock, clock.sleep, clock
    )

    def publish(tick) -> None:
        if tick.step == 5:
            clock.now += 2.5 / RATE  # this tick's work overruns by more than a period

    stats = bridge.run(publish, should_stop=lambda: bridge.step >= 12)
    t = np.array([k["t"] for k in bridge.ticks]) - 100.0
    period = 1 / RATE
    # deadlines start + n * period: sleep overshoot shifts every tick alike, it never accumulates
    np.testing.assert_allclose(t[1:5], np.arange(1, 5) * period + 0.003)
    # tick 6 comes at once after the late tick 5 (no burst of catch-up ticks); deadlines restart from it
    assert t[5] == pytest.approx(t[4] + 2.5 * period)
    np.testing.assert_allclose(t[6:] - t[5], np.arange(1, 7) * period + 0.003)
    assert stats["overruns"] == 1 and stats["ticks"] == 12


def test_duration_ends_the_loop_after_its_ticks(served):
    clock = SleepyClock(overshoot=0.0)
    cfg = BridgeConfig(policy="ws://unused", control_hz=8.0, duration_s=1.0)  # periods exact in binary
    bridge = Bridge(cfg, Scripted(served.metadata), clock, clock.sleep, clock)
    assert bridge.run(lambda tick: None)["ticks"] == 8


def test_a_missing_ros_library_is_named_with_how_to_get_it():
    if importlib.util.find_spec("rclpy") is not None:
        pytest.skip("rclpy is installed here")
    from polyact.deploy.ros import RosUnavailableError
    from polyact.deploy.ros.node import adapter

    with pytest.raises(RosUnavailableError, match=r"rclpy.*setup.bash"):
        adapter(2)

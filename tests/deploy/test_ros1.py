"""The ROS 1 round trip against a real roscore: the simulated robot (a Meta-World process) publishes its
sensors, the bridge (in this process, on this process's rospy node) drives it with a small policy trained
here on scripted demonstrations and served by `polyact serve` in a process of its own.

Checked: every tick is logged, every published command is inside every limit, the hand gets closer to
the goal; once the bridge sees a killed server, every tick holds until it is back, then the bridge
reconnects and resumes; the e-stop latches until a reset; stale sensors -> holds.

Nothing here measures speed (this machine is shared): the tests wait for events and count ticks, and
pytest-timeout reports a hang. The loop's timing (absolute deadlines, overruns, one period to notice a
lost connection) is checked on an injected clock in test_bridge_core.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polyact.deploy.config import BridgeConfig, SafetyConfig
from polyact.deploy.ros.core import Bridge

RATE = 10.0  # control rate of the bridge and the simulated robot (Hz)

# the reasons a bridge gives for holding while its server is down
HOLDS_WITHOUT_POLICY = {"policy connection lost", "no action for this step (policy late or unavailable)"}
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning:rospy")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll until `condition()`, however long that takes; `what` names the wait in a timeout's traceback."""
    while not condition():
        time.sleep(0.02)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- ROS: a real master and this process's node --------------------------------------------------------
@pytest.fixture(scope="module")
def rospy(tmp_path_factory) -> Iterator[Any]:
    if shutil.which("roscore") is None:
        pytest.skip("roscore is not installed (Debian: apt-get install ros-core python3-rospy; .ci/run does)")
    from polyact.deploy.ros import RosUnavailableError
    from polyact.deploy.ros.ros1 import import_rospy, init_node

    try:
        rospy = import_rospy()
    except RosUnavailableError as err:
        pytest.skip(str(err))
    port = _free_port()
    os.environ.update(
        ROS_MASTER_URI=f"http://127.0.0.1:{port}",
        ROS_HOSTNAME="127.0.0.1",
        ROS_HOME=str(tmp_path_factory.mktemp("ros_home")),
    )
    core = subprocess.Popen(
        ["roscore", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        import rosgraph

        wait_for(lambda: rosgraph.is_master_online(), f"roscore on port {port}")
        init_node(rospy, "polyact_test")
        yield rospy
    finally:
        os.killpg(core.pid, signal.SIGINT)
        try:
            core.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(core.pid, signal.SIGKILL)
            core.wait()


# --- the policy: trained here on scripted reach demonstrations -----------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
    """The policy directory of a tiny l1 policy trained for 80 steps on 4 reach-v3 demonstrations."""
    from polyact.collect import record_episode
    from polyact.config import load_config
    from polyact.data import DatasetWriter
    from polyact.envs import EnvConfig, make_env, make_expert
    from polyact.train import TrainConfig, train

    root = tmp_path_factory.mktemp("ros_policy")
    env = make_env("reach-v3", EnvConfig(tasks="reach-v3", height=32, width=32))
    spec = env.contract
    writer = DatasetWriter.for_spec(root / "demos", spec)
    try:
        for seed in range(4):
            writer.add_episode(record_episode(env, make_expert(env), seed))
    finally:
        writer.close()
        env.close()
    overrides = [
        f"dataset={root / 'demos'}",
        f"out={root / 'run'}",
        "policy.size=tiny",
        "policy.head.name=l1",
        "steps=80",
        "batch_size=16",
        "num_workers=0",
        "progress=false",
        "optim.lr=3e-3",
        "optim.warmup_steps=10",
        "ema_decay=0",
    ]
    return str(train(load_config(TrainConfig, overrides)))


def start_server(policy: str, port: int) -> subprocess.Popen:
    """`polyact serve` in a process of its own (the checkpoint names its own spec), returned once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "polyact.cli", "serve", f"policy={policy}", f"port={port}", "threads=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("serving "):
            threading.Thread(target=process.stdout.read, daemon=True).start()  # keep its pipe drained
            return process
    raise AssertionError(f"polyact serve exited ({process.wait()}):\n{''.join(lines)}")


@pytest.fixture
def server(trained) -> Iterator[tuple[subprocess.Popen, int]]:
    port = _free_port()
    process = start_server(trained, port)
    yield process, port
    stop(process)


# --- the simulated robot ------------------------------------------------------------------------------
@pytest.fixture
def sim(rospy, tmp_path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """The simulated robot (reach-v3 at 32x32, RATE Hz) in a process of its own; (process, its step log)."""
    from geometry_msgs.msg import PoseStamped

    log = tmp_path / "sim.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polyact.deploy.ros.sim_robot",
            f"rate_hz={RATE}",
            f"log_path={log}",
            "node_name=polyact_sim_test",
        ],
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )
    try:
        rospy.wait_for_message("/polyact/ee_pose", PoseStamped)
        yield process, log
    finally:
        stop(process)


def sim_log(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- the bridge, in this process ------------------------------------------------------------------------
class Recorder:
    """Every command and gripper command message on the bridge's topics, as the robot receives them."""

    def __init__(self, rospy: Any):
        from geometry_msgs.msg import TwistStamped
        from std_msgs.msg import Float64

        self.twists: list[np.ndarray] = []
        self.grippers: list[float] = []
        self.subscribers = [
            rospy.Subscriber("/polyact/cmd", TwistStamped, self._twist, queue_size=100),
            rospy.Subscriber("/polyact/gripper_cmd", Float64, lambda m: self.grippers.append(m.data), queue_size=100),
        ]

    def _twist(self, m: Any) -> None:
        t = m.twist
        self.twists.append(np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z]))

    def close(self) -> None:
        for s in self.subscribers:
            s.unregister()


class RunningBridge:
    """`ros1.run` in a thread (its control loop), stopped with `stop()`."""

    def __init__(self, cfg: BridgeConfig, policy: Any):
        from polyact.deploy.ros import ros1

        self.bridge = Bridge(cfg, policy)
        self._stop = threading.Event()
        self.stats: dict[str, Any] = {}
        self._thread = threading.Thread(
            target=lambda: self.stats.update(ros1.run(self.bridge, cfg, self._stop.is_set)), daemon=True
        )
        self._thread.start()

    def ticks(self) -> list[dict[str, Any]]:
        return list(self.bridge.ticks)

    def reasons_since(self, t: float) -> list[str]:
        return [k["reason"] for k in self.ticks() if k["t"] >= t]

    def reasons_after(self, step: int) -> list[str]:
        return [k["reason"] for k in self.ticks() if k["step"] > step]

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        return self.stats


def bridge_config(policy: str, **kw: Any) -> BridgeConfig:
    return BridgeConfig(policy=policy, control_hz=RATE, node_name="polyact_test", **kw)


def assert_inside_limits(ticks: list[dict[str, Any]], recorder: Recorder, safety: SafetyConfig) -> None:
    dt, eps = 1.0 / RATE, 1e-9
    assert recorder.twists, "no command reached the robot"
    for twist in recorder.twists:
        assert np.linalg.norm(twist[:3]) <= safety.max_linear_speed + eps
        assert np.linalg.norm(twist[3:]) <= safety.max_angular_speed + eps
    assert all(safety.gripper_min <= g <= safety.gripper_max for g in recorder.grippers)
    assert np.all(np.abs(np.diff(recorder.grippers)) <= safety.max_gripper_rate * dt + eps)
    low, high = np.array(safety.workspace_low), np.array(safety.workspace_high)
    previous = np.zeros(3)
    for tick in ticks:
        v = np.array(tick["linear"])
        if tick["position"] is not None and not tick["hold"]:
            p = np.array(tick["position"])
            inside = (p >= low) & (p <= high)
            after = p + v * dt
            assert np.all(~inside | ((after >= low - eps) & (after <= high + eps))), tick
        if not tick["hold"] and "workspace" not in tick["limited"]:
            assert np.linalg.norm(v - previous) <= safety.max_linear_accel * dt + eps, tick
        previous = v


# --- the tests ------------------------------------------------------------------------------------------
def test_the_bridge_drives_the_simulated_robot_through_the_server(rospy, sim, server, tmp_path):
    _, sim_path = sim
    _, port = server
    from polyact.deploy.ros.node import open_policy

    cfg = bridge_config(f"ws://127.0.0.1:{port}", log_path=str(tmp_path / "bridge.jsonl"))
    recorder = Recorder(rospy)
    policy = open_policy(cfg)
    running = RunningBridge(cfg, policy)
    try:
        wait_for(lambda: running.reasons_since(0).count("policy") >= 60, "60 control steps driven by the policy")
    finally:
        stats = running.stop()
        recorder.close()
        policy.close()
    ticks = running.ticks()
    assert len(sim_log(tmp_path / "bridge.jsonl")) == len(ticks) + 1  # every tick, then the statistics
    assert stats["ticks"] == len(ticks) and [k["step"] for k in ticks] == list(range(1, len(ticks) + 1))
    assert_inside_limits(ticks, recorder, cfg.safety)
    steps = sim_log(sim_path)
    moved = [s for s in steps if any(s["action"][:3])]
    assert moved, "the robot never received a motion command"
    start, end = moved[0]["distance"], min(s["distance"] for s in steps[-10:])
    assert end < 0.6 * start, f"the hand went from {start:.3f} m to {end:.3f} m from the goal"


def test_a_killed_server_holds_the_robot_then_the_bridge_reconnects(rospy, sim, trained):
    from polyact.deploy.ros.node import open_policy

    port = _free_port()
    server = start_server(trained, port)
    cfg = bridge_config(f"ws://127.0.0.1:{port}")
    policy = open_policy(cfg)
    running = RunningBridge(cfg, policy)
    bridge = running.bridge
    try:
        wait_for(lambda: running.reasons_since(0).count("policy") >= 10, "10 control steps driven by the policy")
        server.kill()
        server.wait()
        wait_for(lambda: not policy.connected, "the client noticing the lost connection")
        seen = bridge.step + 1  # a tick under way may have asked before; every later one sees the loss
        wait_for(lambda: len(running.reasons_after(seen)) >= 5 and bridge.counts["policy_errors"] >= 1, "5 holds")
        down = running.ticks()[-1]["step"]
        server = start_server(trained, port)
        wait_for(lambda: "policy" in running.reasons_after(down), "the policy driving again after a restart")
    finally:
        stats = running.stop()
        stop(server)
        policy.close()
    while_down = [k for k in running.ticks() if seen < k["step"] <= down]
    assert while_down and all(k["hold"] and not any(k["linear"]) for k in while_down), while_down[:3]
    assert {k["reason"] for k in while_down} <= HOLDS_WITHOUT_POLICY
    assert stats["connection_lost"] >= 1 and stats["policy_errors"] >= 1, stats


def test_the_estop_latches_until_reset_and_stale_sensors_hold(rospy, sim, trained):
    from std_msgs.msg import Bool, Empty

    estop = rospy.Publisher("/polyact/estop", Bool, queue_size=1, latch=True)
    reset = rospy.Publisher("/polyact/reset", Empty, queue_size=1)
    process, _ = sim
    from polyact.deploy.ros.node import open_policy

    cfg = bridge_config(trained)  # the checkpoint in this process, with its own spec
    running = RunningBridge(cfg, open_policy(cfg))
    try:
        wait_for(lambda: "policy" in running.reasons_since(0), "the policy driving")
        wait_for(lambda: estop.get_num_connections() and reset.get_num_connections(), "the bridge subscribed")
        estop.publish(Bool(data=True))
        wait_for(lambda: running.bridge.estopped, "the e-stop latched")
        pressed_at = time.monotonic()
        estop.publish(Bool(data=False))  # released, but latched until a reset
        wait_for(lambda: len(running.reasons_since(pressed_at)) >= 10, "10 control steps after the e-stop")
        assert set(running.reasons_since(pressed_at)) == {"e-stop latched"}
        reset.publish(Empty())
        reset_at = time.monotonic()
        wait_for(lambda: "policy" in running.reasons_since(reset_at), "the policy driving after the reset")
        process.send_signal(signal.SIGKILL)  # the robot's drivers die: its sensors go stale
        process.wait()
        after = running.ticks()[-1]["step"]
        wait_for(lambda: any(r.startswith("stale") for r in running.reasons_after(after)), "a stale observation")
        stale = next(k["step"] for k in running.ticks() if k["step"] > after and k["reason"].startswith("stale"))
        wait_for(lambda: len(running.reasons_after(stale)) >= 5, "5 control steps after the sensors went stale")
    finally:
        running.stop()
        estop.unregister()
        reset.unregister()
    late = running.reasons_after(stale)
    assert late and all(r.startswith("stale observation") for r in late), late


# --- recording demonstrations from live topics ------------------------------------------------------------
def test_recording_from_live_topics_keeps_every_closed_episode_through_a_kill(rospy, tmp_path):
    """`polyact ros record` in a process of its own records what this process publishes (a camera, joint
    states and a velocity command at 50 Hz, each carrying a counter); episodes open and close on words; a
    kill -9 in the middle of the third loses only that one."""
    from geometry_msgs.msg import Twist, Vector3
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import String

    from polyact.data import EpisodeDataset

    topics = {"cam": ("/rec/cam", Image), "joints": ("/rec/joints", JointState), "cmd": ("/rec/cmd", Twist)}
    pubs = {k: rospy.Publisher(t, kind, queue_size=1) for k, (t, kind) in topics.items()}
    words = rospy.Publisher("/rec/episode", String, queue_size=10)
    out = tmp_path / "demos"
    args = [f"out={out}", "instruction=wave", "cameras=[front:/rec/cam]", "state_topic=/rec/joints"]
    args += ["action_topic=/rec/cmd", "episode_topic=/rec/episode", "rate_hz=20", "node_name=polyact_record_test"]
    recorder = subprocess.Popen([sys.executable, "-m", "polyact.cli", "ros", "record", *args])
    done, count = threading.Event(), [0]

    def publish() -> None:
        while not done.is_set():
            i = count[0] = count[0] + 1
            pubs["cam"].publish(Image(height=4, width=5, encoding="rgb8", step=15, data=bytes([i % 256]) * 60))
            pubs["joints"].publish(JointState(name=["a"], position=[0.01 * i]))
            pubs["cmd"].publish(Twist(linear=Vector3(x=float(i))))
            time.sleep(0.02)

    def episodes() -> int:
        return len(EpisodeDataset(out)) if (out / "meta.json").exists() else 0

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        connected = [words, *pubs.values()]
        wait_for(lambda: all(p.get_num_connections() for p in connected), "the recorder subscribed")
        for word, committed in (("success", 1), ("failure", 2)):
            words.publish(String(data="start"))
            begun = count[0]
            wait_for(lambda begun=begun: count[0] > begun + 40, "0.8 s of messages")
            words.publish(String(data=word))
            wait_for(lambda committed=committed: episodes() == committed, f"episode {committed} committed")
        words.publish(String(data="start"))
        begun = count[0]
        wait_for(lambda: count[0] > begun + 25, "the third episode under way")
        recorder.send_signal(signal.SIGKILL)
        recorder.wait()
    finally:
        done.set()
        thread.join()
        stop(recorder)
        words.unregister()
        for p in pubs.values():
            p.unregister()
    ds = EpisodeDataset(out)
    assert [e.success for e in ds.episodes] == [True, False] and ds.verify() == []
    for e in ds.episodes:
        arrays = ds.episode_arrays(e.index)
        frames, state, action = arrays["obs/rgb/front"][:, 0, 0, 0].astype(int), arrays["obs/state"], arrays["action"]
        assert e.length >= 5
        assert np.all(np.diff(frames) >= 0) and np.all(np.diff(state[:, 0]) >= 0) and np.all(np.diff(action[:, 0]) >= 0)
        # a step's frame, state and command come from about the same moment (counters within a few messages)
        assert np.all(np.abs(state[:, 0] / 0.01 - action[:, 0]) <= 5)

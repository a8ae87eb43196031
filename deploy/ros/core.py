"""The ROS bridge without ROS: observation assembly, the chunk buffer, the policy worker, and the
fixed-rate control loop with its watchdog.

The adapters (ros1.py, ros2.py) only turn messages into calls on `Bridge.sensors`, `Bridge.estop` and
`Bridge.reset`, and each `Tick` into messages; everything else is here, the same for both ROS versions,
and tested without either (tests/deploy/test_bridge_core.py).

Timing. A chunk planned from the observation of step o holds actions for steps o, o+1, ..., o+H-1.
The loop executes the current chunk's action for the current step; when it reaches index
`replan_every - ahead` it asks for the next chunk in the background (`ahead` = the measured latency in
steps, so the answer lands about when `replan_every` actions are done) and switches to it as soon as it
arrives, skipping the actions for steps already past. A chunk whose steps are all past is dropped.

Watchdog: the robot is held (zero velocity, gripper kept) on every step where the e-stop is latched,
an input stream is stale, the policy connection is lost (checked every step, so within one period of
a server's death), the current chunk has no action for this step, or that action was planned from an
observation older than `watchdog.max_action_age_s`.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyact.deploy.config import BridgeConfig
from polyact.deploy.ros.convert import resize, scale_intrinsics
from polyact.deploy.safety import RobotCommand, SafetyFilter
from polyact.errors import ConfigError

log = logging.getLogger("polyact.deploy.bridge")
LOG_TICKS = 200_000  # ticks kept for the log file (about 5.5 hours at 10 Hz)


class Sensors:
    """The robot's latest messages (written by ROS callback threads) and the observation they make."""

    def __init__(self, metadata: Mapping[str, Any], cfg: BridgeConfig, clock: Callable[[], float]):
        self.cfg, self.clock = cfg, clock
        self.features = {k: tuple(v["shape"]) for k, v in metadata["observation"].items() if k != "instruction"}
        self.cameras: list[str] = list(metadata["cameras"])
        self.state_names: list[str] = list(metadata["state_names"])
        poses = sorted(k for k in self.features if k.startswith("extrinsics/"))
        if poses:
            raise ConfigError(
                f"the policy reads camera poses ({', '.join(poses)}: heatmap translation or sub-goal maps); the bridge "
                "does not publish them from tf yet, so serve it to a client that sends them (polyact serve)"
            )
        state_dim = self.features["state"][0]
        self.joints = list(cfg.state_joints or self.state_names)
        if cfg.state_source == "pose":
            layout = ["x", "y", "z", *(["qx", "qy", "qz", "qw"] if cfg.state_orientation else [])]
            layout += ["gripper_state"] if cfg.topics.gripper_state else []
            if len(layout) != state_dim:
                raise ConfigError(
                    f"state_source=pose gives the state {layout} but the policy's state is {self.state_names}; "
                    "set state_orientation, topics.gripper_state, or state_source=joint_state"
                )
        elif len(self.joints) != state_dim:
            raise ConfigError(
                f"state_joints {self.joints} has {len(self.joints)} names; the policy's state is {self.state_names}"
            )
        self.streams = [f"rgb/{c}" for c in self.cameras] + [k for k in self.features if k.startswith("depth/")]
        if cfg.state_source == "pose":
            self.streams += ["pose", *(["gripper_state"] if cfg.topics.gripper_state else [])]
        else:
            self.streams += ["pose", "joint_state"]
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[Any, float]] = {}
        if cfg.instruction:
            self._put("instruction", cfg.instruction)

    def _put(self, key: str, value: Any) -> None:
        with self._lock:
            self._latest[key] = (value, self.clock())

    def _size(self, camera: str) -> tuple[int, int]:
        return self.features[f"rgb/{camera}"][:2]

    # --- callbacks (any thread) ---------------------------------------------------------------------
    def rgb(self, camera: str, image: np.ndarray) -> None:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"camera {camera}: colour image of shape {image.shape}, expected (H, W, 3)")
        self._put(f"rgb/{camera}", resize(image, *self._size(camera)))

    def depth(self, camera: str, image: np.ndarray) -> None:
        self._put(f"depth/{camera}", resize(image, *self._size(camera)).astype(np.float32))

    def camera_info(self, camera: str, intrinsics: np.ndarray, height: int, width: int) -> None:
        self._put(f"intrinsics/{camera}", scale_intrinsics(intrinsics, (height, width), self._size(camera)))

    def pose(self, position: Sequence[float], orientation: Sequence[float]) -> None:
        """End-effector position (m) and orientation quaternion (x, y, z, w), world frame."""
        self._put("pose", (np.asarray(position, np.float64), np.asarray(orientation, np.float64)))

    def gripper_state(self, value: float) -> None:
        self._put("gripper_state", float(value))

    def joint_state(self, names: Sequence[str], positions: Sequence[float]) -> None:
        self._put("joint_state", dict(zip(names, map(float, positions), strict=False)))

    def goal(self, values: Sequence[float]) -> None:
        self._put("goal", np.asarray(values, np.float32))

    def instruction(self, text: str) -> None:
        if not self.cfg.instruction:
            self._put("instruction", str(text))

    # --- reading (the control loop) -----------------------------------------------------------------
    def pose_now(self) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            entry = self._latest.get("pose")
        return None if entry is None else entry[0]

    def observation(self, now: float) -> tuple[dict[str, Any] | None, str]:
        """The contract observation of the latest messages, or None and why not."""
        with self._lock:
            latest = dict(self._latest)
        needed = [*self.streams, "instruction", *(k for k in self.features if k.startswith(("intrinsics/", "goal")))]
        missing = [k for k in needed if k not in latest]
        if missing:
            return None, f"waiting for {', '.join(missing)}"
        max_age = self.cfg.watchdog.max_observation_age_s
        stale = [k for k in self.streams if now - latest[k][1] > max_age]
        if stale:
            return None, f"stale observation ({', '.join(stale)} older than {max_age:g} s)"
        obs = {k: latest[k][0] for k in self.features if k.startswith(("rgb/", "depth/", "intrinsics/"))}
        position, orientation = latest["pose"][0]
        if self.cfg.state_source == "pose":
            parts = [position, *([orientation] if self.cfg.state_orientation else [])]
            parts += [[latest["gripper_state"][0]]] if self.cfg.topics.gripper_state else []
            obs["state"] = np.concatenate(parts).astype(np.float32)
        else:
            joints = latest["joint_state"][0]
            absent = [n for n in self.joints if n not in joints]
            if absent:
                return None, f"joint states lack {absent}"
            obs["state"] = np.asarray([joints[n] for n in self.joints], np.float32)
        if "goal" in self.features:
            goal = latest["goal"][0]
            if goal.shape != self.features["goal"]:
                return None, f"goal has {goal.size} values; the policy reads {self.features['goal'][0]}"
            obs["goal"] = goal
        obs["instruction"] = latest["instruction"][0]
        return obs, ""


@dataclass(frozen=True)
class Planned:
    """The policy's answer to one request: a chunk (H, A), or the error that came instead."""

    chunk: np.ndarray | None
    origin: int  # the control step whose observation it was planned from
    observed_at: float  # monotonic time of that observation
    latency: float  # seconds from request to answer
    epoch: int  # the buffer epoch it was requested in (answers from before a clear are dropped)
    error: str = ""


class PolicyWorker:
    """Asks the policy for chunks in a thread of its own, one request at a time, so the control loop
    never waits for inference, a reconnection, or a timeout."""

    def __init__(self, policy: Any, clock: Callable[[], float]):
        self.policy, self.clock = policy, clock
        self.busy = False
        self._requests: queue.Queue = queue.Queue()
        self._results: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="polyact-policy", daemon=True)
        self._thread.start()

    def submit(self, observations: list[dict[str, Any]], origin: int, observed_at: float, epoch: int) -> None:
        self.busy = True
        self._requests.put((observations, origin, observed_at, epoch))

    def results(self) -> list[Planned]:
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self._requests.put(None)
        self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while (request := self._requests.get()) is not None:
            observations, origin, observed_at, epoch = request
            began = self.clock()
            chunk, error = None, ""
            try:
                chunk = np.asarray(self.policy.infer(observations), np.float32)
            except Exception as err:  # any failure of the policy or its transport means: hold and retry
                error = f"{type(err).__name__}: {err}"
            self._results.put(Planned(chunk, origin, observed_at, self.clock() - began, epoch, error))
            self.busy = False


class ChunkBuffer:
    """The chunk being executed, indexed by control step.

    Not policies/chunking.py's ChunkRunner (and its RecedingHorizon), which evaluation runs, because a
    robot does not wait for the policy: the next chunk is requested `ahead` steps before the executed
    part ends, it arrives while the loop keeps ticking, and the actions for steps already past are
    skipped (a chunk whose steps are all past is dropped). Only this latency compensation lives here:
    the forward pass is chunking.py's `plan_chunks`, on the server or in ServedPolicy in process.
    """

    def __init__(self, replan_every: int):
        self.replan_every = replan_every
        self.chunk: np.ndarray | None = None
        self.origin, self.observed_at, self.epoch = 0, 0.0, 0

    def offer(self, planned: Planned, step: int) -> bool:
        """Switch to a new chunk unless all its steps are past (then False: it came too late)."""
        if planned.chunk is None or step - planned.origin >= len(planned.chunk):
            return False
        self.chunk, self.origin, self.observed_at = planned.chunk, planned.origin, planned.observed_at
        return True

    def action(self, step: int) -> tuple[np.ndarray | None, int]:
        """This step's action and its index in the chunk, or (None, -1) when the chunk has none."""
        index = step - self.origin
        if self.chunk is None or not 0 <= index < len(self.chunk):
            return None, -1
        return self.chunk[index], index

    def due(self, step: int, ahead: int) -> bool:
        return self.chunk is None or step - self.origin >= self.replan_every - ahead

    def clear(self) -> None:
        self.chunk = None
        self.epoch += 1


@dataclass(frozen=True)
class Tick:
    """What one control step decided; the adapter publishes it."""

    step: int
    t: float  # monotonic seconds
    stamp: float  # wall-clock seconds, for message headers
    command: RobotCommand
    target: tuple[np.ndarray, np.ndarray] | None  # pose commands: position (3,), quaternion (x, y, z, w)
    index: int  # the executed action's index in its chunk; -1 while holding

    def record(self, position: np.ndarray | None) -> dict[str, Any]:
        c = self.command
        return {
            "step": self.step,
            "t": self.t,
            "stamp": self.stamp,
            "hold": c.hold,
            "reason": c.reason,
            "linear": c.linear.tolist(),
            "angular": c.angular.tolist(),
            "gripper": c.gripper,
            "limited": list(c.limited),
            "index": self.index,
            "position": None if position is None else position.tolist(),
            "target": None if self.target is None else self.target[0].tolist(),
        }


class Bridge:
    """The control loop: `run(publish, should_stop)` calls `tick()` at the control rate."""

    def __init__(
        self,
        cfg: BridgeConfig,
        policy: Any,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
    ):
        meta = policy.metadata
        self.cfg, self.policy, self.clock, self.sleep, self.wall = cfg, policy, clock, sleep, wall
        self.rate = float(cfg.control_hz or meta["control_hz"])
        self.action_dim = len(meta["action"]["names"])
        if max(cfg.command.indices()) >= self.action_dim:
            raise ConfigError(
                f"command action indices {cfg.command.indices()} exceed the policy's actions {meta['action']['names']}"
            )
        self.sensors = Sensors(meta, cfg, clock)
        self.safety = SafetyFilter(cfg.safety, cfg.command, self.rate)
        self.buffer = ChunkBuffer(int(meta["replan_every"]))
        self.chunk_shape = (int(meta["chunk"]), self.action_dim)
        self.history: deque[dict[str, Any]] = deque(maxlen=int(meta["history"]))
        self.worker = PolicyWorker(policy, clock)
        self.step = 0
        self.counts: Counter[str] = Counter()  # chunks, late_chunks, policy_errors, connection_lost, overruns
        self.latencies: deque[float] = deque(maxlen=8)
        self.retry_at = -math.inf
        self.ticks: deque[dict[str, Any]] = deque(maxlen=LOG_TICKS)
        self._estop_lock = threading.Lock()
        self._estop_pressed = self._estop_latched = False
        self._hold_target: tuple[np.ndarray, np.ndarray] | None = None
        self._last_target: tuple[np.ndarray, np.ndarray] | None = None
        self._said: dict[str, float] = {}  # message -> when it was last logged

    # --- e-stop -------------------------------------------------------------------------------------
    def estop(self, pressed: bool) -> None:
        """An e-stop message: true latches a stop until `reset()` while the e-stop reads false."""
        with self._estop_lock:
            self._estop_pressed = bool(pressed)
            if pressed and not self._estop_latched:
                self._estop_latched = True
                log.warning("e-stop pressed: holding the robot until a reset")

    def reset(self) -> bool:
        """Clear a latched e-stop (not while it is still pressed); planning restarts from scratch."""
        with self._estop_lock:
            if self._estop_pressed:
                log.warning("reset refused: the e-stop still reads true")
                return False
            if self._estop_latched:
                log.warning("e-stop reset: resuming with a fresh plan")
            self._estop_latched = False
        return True

    @property
    def estopped(self) -> bool:
        return self._estop_latched

    # --- one control step ---------------------------------------------------------------------------
    def ahead(self) -> int:
        """Steps before the executed part of a chunk ends at which to ask for the next one."""
        if self.cfg.request_ahead:
            return self.cfg.request_ahead
        measured = math.ceil(max(self.latencies, default=0.0) * self.rate)
        return int(min(max(measured, 1), self.buffer.replan_every))

    def tick(self) -> Tick:
        now = self.clock()
        self.step += 1
        step = self.step
        for planned in self.worker.results():
            self._receive(planned, step, now)
        estopped = self.estopped
        if estopped and self.buffer.chunk is not None:
            self.buffer.clear()
            self.history.clear()
        connected = bool(self.policy.connected)
        if not connected and self.buffer.chunk is not None:
            self.buffer.clear()
            self.counts["connection_lost"] += 1
            self._say("policy connection lost: holding until it is back")
        obs, why = self.sensors.observation(now)
        if obs is not None:
            if self.history and self.history[-1]["instruction"] != obs["instruction"]:
                self.history.clear()  # a new instruction is a new task: plan afresh
                self.buffer.clear()
            self.history.append(obs)
        action, index, hold = None, -1, None
        if estopped:
            hold = "e-stop latched"
        elif obs is None:
            hold = why
        elif not connected:
            hold = "policy connection lost"
        else:
            action, index = self.buffer.action(step)
            if action is None:
                hold = "no action for this step (policy late or unavailable)"
            elif now - self.buffer.observed_at > self.cfg.watchdog.max_action_age_s:
                action, index, hold = None, -1, f"action planned over {self.cfg.watchdog.max_action_age_s:g} s ago"
        if (
            obs is not None
            and not estopped
            and not self.worker.busy
            and now >= self.retry_at
            and self.buffer.due(step, self.ahead())
        ):
            self.worker.submit(list(self.history), step, now, self.buffer.epoch)
        pose = self.sensors.pose_now()
        command = self.safety(action, None if pose is None else pose[0], hold)
        if command.hold and hold is None:
            index = -1
        if command.hold:
            self._say(f"holding: {command.reason}")
        tick = Tick(step, now, self.wall(), command, self._target(command, pose), index)
        self.ticks.append(tick.record(None if pose is None else pose[0]))
        return tick

    def final_hold(self) -> Tick:
        """The command to leave the robot with when the bridge stops (not logged as a control tick)."""
        pose = self.sensors.pose_now()
        command = self.safety.hold("bridge stopped")
        return Tick(self.step + 1, self.clock(), self.wall(), command, self._target(command, pose), -1)

    def _receive(self, planned: Planned, step: int, now: float) -> None:
        if planned.epoch != self.buffer.epoch:
            return  # planned before the buffer was cleared (e-stop, lost connection, new instruction)
        if planned.error or planned.chunk is None or planned.chunk.shape != self.chunk_shape:
            self.counts["policy_errors"] += 1
            self.retry_at = now + self.cfg.watchdog.reconnect_interval_s
            shape = None if planned.chunk is None else planned.chunk.shape
            why = planned.error or f"chunk of shape {shape}, expected {self.chunk_shape}"
            self._say(f"policy request failed: {why}")
            return
        self.latencies.append(planned.latency)
        self.counts["chunks" if self.buffer.offer(planned, step) else "late_chunks"] += 1

    def _target(self, command: RobotCommand, pose: tuple[np.ndarray, np.ndarray] | None) -> Any:
        """Pose commands: where the end effector should be one step from now."""
        if self.cfg.command.kind != "pose" or pose is None:
            return None
        if command.hold:
            if self._hold_target is None:
                self._hold_target = self._last_target or pose
            return self._hold_target
        self._hold_target = None
        position, orientation = pose
        self._last_target = (position + command.linear / self.rate, _rotate(orientation, command.angular / self.rate))
        return self._last_target

    def _say(self, message: str) -> None:
        """Log a message at most once every 5 s (a watchdog can fire every step)."""
        now = self.clock()
        if now - self._said.get(message, -math.inf) > 5.0:
            log.warning(message)
            self._said[message] = now

    # --- the loop -----------------------------------------------------------------------------------
    def run(
        self,
        publish: Callable[[Tick], None],
        should_stop: Callable[[], bool] = lambda: False,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Tick at the control rate until `should_stop()` or `cfg.duration_s`; returns `stats()`.

        Deadlines are absolute (start + n * period), so sleep overshoot does not accumulate; a tick
        more than one period late skips ahead instead of bursting to catch up."""
        period = 1.0 / self.rate
        start = deadline = self.clock()
        last_status, last_reason = -math.inf, None
        try:
            while not should_stop() and not (self.cfg.duration_s and self.clock() - start >= self.cfg.duration_s):
                tick = self.tick()
                publish(tick)
                if on_status and (tick.command.reason != last_reason or tick.t - last_status >= 1.0):
                    on_status(self.status())
                    last_status, last_reason = tick.t, tick.command.reason
                deadline += period
                now = self.clock()
                if now - deadline > period:
                    self.counts["overruns"] += 1
                    deadline = now
                else:
                    self.sleep(max(0.0, deadline - now))
        finally:
            self.worker.stop()
            if self.cfg.log_path:
                self.write_log(self.cfg.log_path)
        return self.stats()

    def status(self) -> dict[str, Any]:
        last = self.ticks[-1] if self.ticks else {}
        return {
            "step": self.step,
            "hold": last.get("hold", True),
            "reason": last.get("reason", "starting"),
            "estop": self.estopped,
            "connected": bool(self.policy.connected),
            **self.counts,
            "holds": dict(self.safety.holds),
            "limited": dict(self.safety.limited),
            "rejected_actions": self.safety.rejected,
            "latency_ms": round(1000 * self.latencies[-1], 1) if self.latencies else None,
        }

    def stats(self) -> dict[str, Any]:
        """Period statistics of the ticks so far (measured, monotonic clock) and the counters."""
        times = np.array([t["t"] for t in self.ticks])
        periods = np.diff(times) if len(times) > 1 else np.zeros(0)
        target = 1.0 / self.rate
        error = np.abs(periods - target)
        stats = {"control_hz": self.rate, "ticks": len(times), **self.status()}
        if len(periods):
            stats.update(
                period_ms_mean=1000 * float(periods.mean()),
                period_ms_std=1000 * float(periods.std()),
                period_ms_max=1000 * float(periods.max()),
                jitter_ms_mean=1000 * float(error.mean()),
                jitter_ms_p99=1000 * float(np.percentile(error, 99)),
            )
        return stats

    def write_log(self, path: str | Path) -> None:
        """Every tick kept, one JSON object per line, then a last line with the statistics."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            for record in self.ticks:
                f.write(json.dumps(record) + "\n")
            f.write(json.dumps({"stats": self.stats()}) + "\n")


def _rotate(quaternion: np.ndarray, rotvec: np.ndarray) -> np.ndarray:
    """The orientation (x, y, z, w) turned by the world-frame rotation vector `rotvec` (radians)."""
    angle = float(np.linalg.norm(rotvec))
    if angle == 0.0:
        return np.asarray(quaternion, np.float64)
    axis = rotvec / angle
    dx, dy, dz = axis * math.sin(angle / 2)
    dw = math.cos(angle / 2)
    x, y, z, w = quaternion
    out = np.array(
        [
            dw * x + dx * w + dy * z - dz * y,
            dw * y - dx * z + dy * w + dz * x,
            dw * z + dx * y - dy * x + dz * w,
            dw * w - dx * x - dy * y - dz * z,
        ]
    )
    return out / np.linalg.norm(out)

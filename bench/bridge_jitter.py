"""Control-loop period jitter of the ROS bridge, side by side with a naive loop doing the same work.

Both loops run the bridge core's `tick()` (sensor assembly, chunk buffer, watchdog, safety filter) with
the `small` l1 policy of bench/policies.py (one 64x64 camera) in this process, its inference in the
bridge's worker thread, while a thread feeds camera, pose and gripper messages at 30 Hz as drivers do:

- bridge: `Bridge.run`, absolute deadlines (start + n * period), a late tick skips ahead;
- naive: `tick(); time.sleep(period)`, the loop most hand-written robot nodes start with (rospy.Rate and
  rclpy's rate sleep to absolute deadlines too, so they time like the bridge, not like this).

Reported per rate: mean and std of the measured period and mean and p99 of |period - target|. ROS
itself is not in the loop (publishing a twist costs microseconds); the figures are the loop's own.

    python -m polyact.bench.bridge_jitter [--rates 10 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import numpy as np
import torch

from polyact.bench.common import header
from polyact.bench.policies import build, setup
from polyact.deploy.config import BridgeConfig
from polyact.deploy.policy import ServedPolicy
from polyact.deploy.ros.core import Bridge

SENSOR_HZ = 30.0


def feed(bridge: Bridge, stop: threading.Event, size: int) -> None:
    """Camera, pose, gripper, goal and instruction messages at SENSOR_HZ, as a robot's drivers publish."""
    rng = np.random.default_rng(0)
    s = bridge.sensors
    s.goal([0.1, 0.8, 0.1])
    s.instruction("reach the goal")
    while not stop.is_set():
        s.rgb("corner", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        s.pose(0.2 * rng.standard_normal(3) + [0.0, 0.7, 0.2], [0.0, 0.0, 0.0, 1.0])
        s.gripper_state(1.0)
        time.sleep(1 / SENSOR_HZ)


def timed(policy: ServedPolicy, rate: float, seconds: float, size: int, naive: bool) -> dict[str, Any]:
    cfg = BridgeConfig(policy="in-process", control_hz=rate, duration_s=seconds)
    bridge = Bridge(cfg, policy)
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(bridge, stop, size), daemon=True)
    feeder.start()
    try:
        if naive:
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                bridge.tick()
                time.sleep(1 / rate)
            bridge.worker.stop()
        else:
            bridge.run(lambda tick: None)
    finally:
        stop.set()
        feeder.join()
    times = np.array([t["t"] for t in bridge.ticks])
    periods = np.diff(times)
    error = np.abs(periods - 1 / rate)
    policy_ticks = sum(t["reason"] == "policy" for t in bridge.ticks)
    return {
        "mean": 1000 * periods.mean(),
        "std": 1000 * periods.std(),
        "err_mean": 1000 * error.mean(),
        "err_p99": 1000 * np.percentile(error, 99),
        "ticks": len(times),
        "policy": policy_ticks,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 20.0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the robot computer's other work keeps the rest
    spec, stats = setup(args.size)
    policy = ServedPolicy(build("l1", {}, spec, stats).eval(), spec, "small-l1")
    policy.warm_up()
    print(header("ROS bridge control-loop jitter"))
    print(
        f"small l1 policy in process ({args.size}x{args.size}, 1 torch thread), sensors at {SENSOR_HZ:g} Hz, "
        f"{args.seconds:g} s per run\n"
    )
    print("| rate | loop | mean period (ms) | std (ms) | mean abs(period - target) (ms) | p99 (ms) | ticks |")
    print("|---|---|---|---|---|---|---|")
    for rate in args.rates:
        for name, naive in (("bridge (absolute deadlines)", False), ("naive tick + sleep(period)", True)):
            r = timed(policy, rate, args.seconds, args.size, naive)
            print(
                f"| {rate:g} Hz | {name} | {r['mean']:.2f} | {r['std']:.2f} | {r['err_mean']:.2f} | "
                f"{r['err_p99']:.2f} | {r['ticks']} ({r['policy']} driven by the policy) |",
                flush=True,
            )


if __name__ == "__main__":
    main()

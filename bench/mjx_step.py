"""rlbench_like environment steps/s on MJX against batch size, beside the CPU MuJoCo backend, in one run.

An environment step is one 20 Hz control step of the `default` action mode: inverse kinematics, then
25 physics steps of 2 ms. MJX: one jitted, vmapped call steps the whole batch (MJXBatch.step); the first
reset per batch size compiles, and the seconds jax spent tracing, lowering and compiling in it are
reported beside the reset's. CPU: the CPU backend's Arm.step (numpy IK, mujoco.mj_step) on one
environment, and on N environments in a Python loop. Both run the same small random delta actions from
the same reset seeds, without rendering.

    python -m polyact.bench.mjx_step [--task reach_target] [--sizes 1 16 256] [--steps 5]
    python -m polyact.bench.mjx_step --sizes 1024 2048 4096 --steps 2   # the large batches (minutes each)

pick_and_lift at several sizes in one process needs `sysctl -w vm.max_map_count=262144` on a CPU: its
unfused programs map about 38,000 memory sections per size, and at Linux's default 65,530 the second
size's compile aborts ("LLVM compilation error: Cannot allocate memory"; bench/README.md).
"""

from __future__ import annotations

import argparse
import time

import jax
import mujoco
import numpy as np

from polyact.bench.common import header
from polyact.envs.rlbench_like import TASKS
from polyact.envs.rlbench_like.arm import Arm
from polyact.envs.rlbench_like.mjx.batch import MJXBatch


def actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 7) small random deltas (1 cm, 0.02 rad at most), gripper open."""
    a = rng.uniform(-1.0, 1.0, (n, 7)) * [0.01, 0.01, 0.01, 0.02, 0.02, 0.02, 0.0]
    a[:, -1] = -1.0
    return a


def cpu_steps_per_second(batch: MJXBatch, n: int, steps: int) -> float:
    """The CPU backend stepping n environments one after another (laid out as the MJX batch's)."""
    envs = []
    for seed in range(n):
        _, _, state = batch.layout(seed, {})
        data = mujoco.MjData(batch.model)  # the welded props are mocap bodies: the layout is all in the data
        for field, value in state.items():
            getattr(data, field)[:] = value
        envs.append(Arm(batch.model, data, "default"))
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        for arm, a in zip(envs, actions(rng, n), strict=True):
            arm.step(a)
    return n * steps / (time.perf_counter() - start)


class CompileClock:
    """Seconds jax spends tracing, lowering and compiling while it is entered, from jax's own events.
    jax < 0.7 cannot unregister a listener, so one listener serves the process and counts for the clocks
    entered at the time."""

    EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )
    _entered: list[CompileClock] = []
    _listening = False

    def __init__(self) -> None:
        self.seconds = 0.0

    @classmethod
    def _listen(cls, event: str, duration: float, **_: object) -> None:
        if event in cls.EVENTS:
            for clock in cls._entered:
                clock.seconds += duration

    def __enter__(self) -> CompileClock:
        if not CompileClock._listening:
            jax.monitoring.register_event_duration_secs_listener(CompileClock._listen)
            CompileClock._listening = True
        CompileClock._entered.append(self)
        return self

    def __exit__(self, *_: object) -> None:
        CompileClock._entered.remove(self)


def mjx_steps_per_second(batch: MJXBatch, n: int, steps: int) -> tuple[float, float, float]:
    """(steps/s, seconds of the first reset, of them compiling) of the batch at size n."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    with CompileClock() as clock:
        batch.reset(list(range(n)))  # settles with two control steps: compiles the step at this size
        batch.d.qpos.block_until_ready()
    reset_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        batch.step(actions(rng, n))
    batch.d.qpos.block_until_ready()
    run_s = time.perf_counter() - start
    return n * steps / run_s, reset_s, clock.seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="reach_target")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--steps", type=int, default=5, help="control steps timed per batch size")
    args = parser.parse_args(argv)
    batch = MJXBatch(TASKS[args.task]())
    print(header(f"rlbench_like on MJX: {args.task}, env steps/s against batch size"))
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; mujoco {mujoco.__version__}; float64")
    cpu_one = cpu_steps_per_second(batch, 1, args.steps)
    print(f"CPU MuJoCo, 1 env: {cpu_one:.1f} env steps/s")
    print("| N | MJX env steps/s | first reset s | of it compiling s | CPU loop env steps/s | MJX / CPU loop |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        fast, reset_s, compile_s = mjx_steps_per_second(batch, n, args.steps)
        cpu = cpu_steps_per_second(batch, n, max(1, args.steps * min(n, 16) // n))
        print(f"| {n} | {fast:.1f} | {reset_s:.0f} | {compile_s:.0f} | {cpu:.1f} | {fast / cpu:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

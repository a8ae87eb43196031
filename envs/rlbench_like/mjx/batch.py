"""MJXBatch: N environments of one rlbench_like task stepped at once on MJX (jit + vmap).

Reset lays each environment out with the task's own numpy `reset` on a CPU Sim (the variation and
seed choose colours and positions exactly as the CPU env does: same random draws, same order), then
moves the layouts to the device (per-environment qpos, qvel and the moved fixed bodies' poses) and lets
the props settle there in one batched call. Step is one jitted, vmapped control step (control.py);
success is the task's test in JAX (success.py), checked after every control step as the CPU env does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from polyact.envs.rlbench_like.arm import SUBSTEPS, Arm
from polyact.envs.rlbench_like.env import SETTLE_STEPS
from polyact.envs.rlbench_like.mjx.control import ArmIds, ArmState, command, home_state, substep
from polyact.envs.rlbench_like.mjx.kinematics import ArmChain
from polyact.envs.rlbench_like.mjx.model import mjx_model
from polyact.envs.rlbench_like.mjx.success import success_fn
from polyact.envs.rlbench_like.scene import ARM_JOINTS
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.tasks.base import OPEN, Task
from polyact.envs.rlbench_like.variations import Variation, select
from polyact.errors import ConfigError

if SETTLE_STEPS % SUBSTEPS:
    raise ImportError("MJXBatch settles in whole control steps: SETTLE_STEPS must be a multiple of SUBSTEPS")
# The state one environment starts from, batched on the device: the welded props are mocap bodies on MJX
# (model.py), so a task's reset moves them in the data. A reset that changes a model field (hiding props:
# contacts and gravity compensation; moving a body that is not a mocap body) is refused: the model is a
# compile-time constant shared by the batch.
_STATE_FIELDS = ("qpos", "qvel", "ctrl", "mocap_pos", "mocap_quat")
_FIXED_FIELDS = ("body_pos", "body_quat", "geom_contype", "geom_conaffinity", "body_gravcomp")
_POSE_FIELDS = ("xpos", "xmat", "site_xpos", "site_xmat")  # what Sim reads of a pose


def _on_host(tree: Any) -> Any:
    """`tree` with every array copied to a numpy array, to batch it on the host."""
    return jax.tree_util.tree_map(np.asarray, tree)


def _batched(tree: Any, n: int, **fields: np.ndarray) -> Any:
    """`tree` (numpy arrays) repeated n times along a new leading (batch) axis, `fields` (n, ...) put in
    its place, moved to the device in one transfer. Built with numpy: jax's eager ops compile one small
    program per array shape, which cost 40 s for MJX data's 122 arrays at each new batch size."""
    tiled = jax.tree_util.tree_map(lambda x: np.repeat(x[None], n, axis=0), tree)
    return jax.device_put(tiled.replace(**fields) if fields else tiled)


def _jit_without_cpu_fusion(fn: Callable) -> Callable:
    """jax.jit, without XLA's fusion and constant-folding passes on a CPU. Fusion inlines mjx kinematics'
    unrolled body chain into fusions that recompute it (13 ms for 16 bodies, 0.1 ms unfused); a control
    step took 0.29 / 2.81 / 12.8 s at N=1 / 4 / 16 with it and 0.07 / 0.11 / 0.28 s without, qpos
    unchanged (within 5e-12 of the CPU backend either way). With fusion off, constant folding made the
    compile grow with N (presumably folding the closed-over model's arrays at the batch's size): the
    kinematics call compiled in 2.3 min at N=64 and 12 min at N=1,024, 3.3 min at N=1,024 without it (all
    on the same loaded 2-core machine). On a GPU fusion is what makes kernels cheap, so both stay."""
    if jax.default_backend() == "cpu":
        return jax.jit(fn, compiler_options={"xla_disable_hlo_passes": "fusion,constant_folding"})
    return jax.jit(fn)


def enable_x64() -> None:
    """MJX in float64, as MuJoCo on the CPU: float32 physics drifts from the CPU backend within a second
    under the arm's stiff servos, which would make the equivalence tolerance meaningless."""
    jax.config.update("jax_enable_x64", True)


class MJXBatch:
    """`reset(seeds, variations)` then `step(actions)` for N environments of `task`.

    Shapes: seeds (N,), actions (N, 7) in the `default` action mode; `qpos` (N, nq), `success` (N,)."""

    def __init__(self, task: Task):
        enable_x64()
        self.task = task
        self.model = mjx_model(task)
        self._data = mujoco.MjData(self.model)
        self._sim = Sim(self.model, self._data)
        self._arm = Arm(self.model, self._data, "default")
        self._fixed = {f: getattr(self.model, f).copy() for f in _FIXED_FIELDS}
        self._mocap_bodies = np.flatnonzero(self.model.body_mocapid >= 0)
        self.variations = task.variations()
        self.chain = ArmChain.from_model(self.model, ARM_JOINTS, "tcp")
        ids = ArmIds(
            tuple(self.model.actuator(f"act{i}").id for i in range(1, 8)),
            self.model.actuator("gripper").id,
            self.model.site("tcp").id,
        )
        # The model is closed over, a constant of the compiled step: passed as an argument (its arrays
        # runtime values), one physics step took 0.56 s here against 0.02 s. For the same reason a control
        # step is three jitted calls (IK, one physics substep looped over in Python, success), not one: a
        # lax.fori_loop hands its body the model's arrays as operands; at N=2, five substeps in one took
        # 542 ms against 5 x 76 ms, and its compile took longer than one substep's (55 s against 42 s).
        mx = mjx.put_model(self.model)
        chain = self.chain
        self._command = _jit_without_cpu_fusion(jax.vmap(lambda d, arm, action: command(d, arm, action, chain, ids)))
        step_one = lambda d, ramp, k: substep(mx, d, ramp, k, ids)  # noqa: E731
        self._substep = _jit_without_cpu_fusion(jax.vmap(step_one, in_axes=(0, 0, None)))
        self._succeed = _jit_without_cpu_fusion(jax.vmap(success_fn(task.name, self.model)))
        self._kinematics = _jit_without_cpu_fusion(jax.vmap(lambda d: mjx.kinematics(mx, d)))
        self._blank = _on_host(mjx.make_data(mx))
        self._home = _on_host(home_state(self.chain))
        self.d: mjx.Data | None = None
        self.arm: ArmState | None = None
        self.success: jnp.ndarray | None = None

    def layout(self, seed: int, options: dict[str, Any]) -> tuple[Variation, str, dict[str, np.ndarray]]:
        """One environment's episode start on the CPU, as RLBenchLikeEnv._reset_sim before it settles:
        (variation, instruction, {qpos, qvel, ctrl, mocap_pos, mocap_quat})."""
        rng = np.random.default_rng(seed)
        if "variation" in options:
            variation = self.variations[int(options["variation"])]
        else:
            candidates = select(self.variations, str(options.get("variation_split", "train")))
            variation = candidates[int(rng.integers(len(candidates)))]
        for f in ("body_pos", "body_quat"):  # the CPU Sim's reset moves welded props in the model
            getattr(self.model, f)[:] = self._fixed[f]
        mujoco.mj_resetData(self.model, self._data)
        self._sim.restore_appearance()
        self._arm.reset()
        self.task.reset(self._sim, rng, variation)
        for f, v in self._fixed.items():
            changed = getattr(self.model, f) != v
            if f in ("body_pos", "body_quat"):
                changed[self._mocap_bodies] = False
            if changed.any():
                raise ConfigError(f"{self.task.name}: its reset changes {f}, which the MJX backend cannot batch")
        instruction = variation.instructions[int(rng.integers(len(variation.instructions)))]
        state = {f: getattr(self._data, f).copy() for f in _STATE_FIELDS}
        return variation, instruction, state

    def reset(self, seeds: Sequence[int], options: Sequence[dict[str, Any]] | None = None) -> list[str]:
        """Start one episode per seed (options per environment: `variation` or `variation_split`);
        returns the instructions. Compiles on the first call for a batch size."""
        options = options or [{}] * len(seeds)
        layouts = [self.layout(int(s), dict(o)) for s, o in zip(seeds, options, strict=True)]
        stacked = {k: np.stack([lay[2][k] for lay in layouts]) for k in _STATE_FIELDS}
        self.d = self._kinematics(_batched(self._blank, len(seeds), **stacked))
        self.arm = _batched(self._home, len(seeds))
        # The CPU env settles the props with SETTLE_STEPS physics steps, the servos holding home and the
        # gripper open: that is what control steps commanding no motion with the gripper open do, and
        # reusing the compiled step saves compiling a second MJX step (minutes on a small CPU).
        hold = np.zeros((len(seeds), 7))
        hold[:, -1] = OPEN
        for _ in range(SETTLE_STEPS // SUBSTEPS):
            self.step(hold)
        return [lay[1] for lay in layouts]

    def step(self, actions: np.ndarray) -> jnp.ndarray:
        """One control step of every environment; returns success (N,) after it."""
        if self.d is None:
            raise RuntimeError("MJXBatch.step before reset")
        d, self.arm, ramp = self._command(self.d, self.arm, jnp.asarray(actions, jnp.float64))
        for k in range(SUBSTEPS):  # k traced (an array), so that one compiled substep serves them all
            d = self._substep(d, ramp, jnp.asarray(k))
        self.d, self.success = d, self._succeed(d)
        return self.success

    def success_at(self, poses: dict[str, np.ndarray]) -> np.ndarray:
        """The task's success test on given world poses, without physics or kinematics (e.g. a recorded
        CPU trajectory's): xpos (T, nbody, 3), site_xpos (T, nsite, 3) -> (T,) bool."""
        return np.asarray(self._succeed(_batched(self._blank, len(poses["xpos"]), **poses)))

    def snapshot(self) -> dict[str, np.ndarray]:
        """The batch's state on the host, (N, ...) with MjData's layouts: qpos, qvel, mocap_pos, mocap_quat,
        the world poses a task's privileged state reads (xpos, xmat (N, nbody, 9), site_xpos, site_xmat)
        and the arm's commands (q_cmd, target_pos, target_quat): what the batched experts read (experts.py)."""
        if self.d is None:
            raise RuntimeError("MJXBatch.snapshot before reset")
        n = len(self.d.qpos)
        names = ("qpos", "qvel", "mocap_pos", "mocap_quat", *_POSE_FIELDS)
        fields = {f: np.asarray(getattr(self.d, f)) for f in names}
        for f in ("xmat", "site_xmat"):
            fields[f] = fields[f].reshape(n, -1, 9)
        return fields | {k: np.asarray(v) for k, v in self.arm._asdict().items()}

    @property
    def qpos(self) -> np.ndarray:
        return np.asarray(self.d.qpos)

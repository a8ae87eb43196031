"""The rlbench_like suite on MJX, MuJoCo's JAX backend: N environments of one task reset and stepped by
one jitted, vmapped function, from the same task definitions as the CPU backend (docs/rlbench_like.md,
"The MJX backend"). Importing this package loads nothing heavy; its modules import jax."""

from __future__ import annotations

from polyact.lazy import lazy_exports

__getattr__ = lazy_exports(
    __name__, {"MJXBatch": "batch", "SUPPORTED_TASKS": "model", "mjx_model": "model", "ArmChain": "kinematics"}
)

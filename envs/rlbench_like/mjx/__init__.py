"""The rlbench_like suite on MJX, MuJoCo's JAX backend: N environments of one task reset and stepped by
one jitted, vmapped function, from the same task definitions as the CPU backend (docs/rlbench_like.md,
"The MJX backend"); the scripted experts driven in batch (experts.py), state policies evaluated in batch
(evaluate.py), and state trajectories rendered back on the CPU (trajectory.py, replay.py). Importing
this package loads nothing heavy; batch, control, kinematics and success import jax, experts.py,
evaluate.py and the replay path do not."""

from __future__ import annotations

from polyact.lazy import lazy_exports

__getattr__ = lazy_exports(
    __name__,
    {
        "MJXBatch": "batch",
        "SUPPORTED_TASKS": "model",
        "mjx_model": "model",
        "ArmChain": "kinematics",
        "run_experts": "experts",
        "evaluate_states": "evaluate",
        "replay_trajectories": "replay",
        "ReplayEnv": "replay",
        "StateTrajectory": "trajectory",
        "save_trajectories": "trajectory",
        "load_trajectories": "trajectory",
    },
)

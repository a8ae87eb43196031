"""An rlbench_like episode as states: what a batched simulation (MJX) records so that the CPU renderer can
rebuild the episode's observations later, in other processes or on another machine (replay.py).

A trajectory holds the physics state after the reset and after every control step, not images: the
scene's colours, hidden props and welded props' layout come from the task's own reset for the same seed
and options, and the welded props' recorded poses let the replay check that its rebuilt scene is the one
the trajectory was simulated in. Saved as one .npz file with a versioned JSON header (`save_trajectories`).
No jax here: the replay workers import this module.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from polyact.errors import ConfigError

FORMAT_NAME = "polyact-state-trajectories"
FORMAT_VERSION = 1
_ARRAYS = ("qpos", "qvel", "actions", "successes", "prop_poses")


@dataclass(frozen=True)
class StateTrajectory:
    """One environment's episode of T control steps.

    qpos (T+1, nq), qvel (T+1, nv): after the reset and after each step (as MuJoCo's step leaves them);
    actions (T, 7) float32; successes (T,) bool, the task's test after each step; prop_poses (P, 7):
    position and quaternion of each welded prop in `props` at the reset (they never move)."""

    task: str
    seed: int
    options: dict[str, Any]  # the reset options: they choose the layout's random draws, so replay needs them
    instruction: str
    qpos: np.ndarray
    qvel: np.ndarray
    actions: np.ndarray
    successes: np.ndarray
    props: tuple[str, ...] = ()
    prop_poses: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))

    def __post_init__(self) -> None:
        steps = len(self.actions)
        if steps < 1:
            raise ValueError(f"{self.task} seed {self.seed}: a trajectory needs at least one control step")
        shapes = {name: np.shape(getattr(self, name)) for name in _ARRAYS}
        expected_lengths = {"qpos": steps + 1, "qvel": steps + 1, "successes": steps, "prop_poses": len(self.props)}
        for name, length in expected_lengths.items():
            if len(getattr(self, name)) != length:
                raise ValueError(
                    f"{self.task} seed {self.seed}: {name} has {len(getattr(self, name))} rows, expected {length} "
                    f"for {steps} actions and {len(self.props)} props; shapes {shapes}"
                )

    @property
    def success(self) -> bool:
        return bool(np.any(self.successes))


def welded_props(model: mujoco.MjModel) -> list[int]:
    """Body ids of the world's leaf bodies without joints (table, pads, target markers): what a task's reset
    moves by editing the model on the CPU, and the mocap bodies of the MJX model (mjx/model.py)."""
    has_child = np.zeros(model.nbody, bool)
    has_child[model.body_parentid[1:]] = True
    return [
        b
        for b in range(1, model.nbody)
        if model.body_parentid[b] == 0 and not model.body_jntnum[b] and not has_child[b]
    ]


def prop_poses(model: mujoco.MjModel, data: mujoco.MjData) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, (P, 7) position and quaternion) of the welded props: from the data where a prop is a mocap
    body (MJX's model), from the model otherwise (the CPU backend's)."""
    ids = welded_props(model)
    poses = []
    for b in ids:
        mocap = model.body_mocapid[b]
        if mocap >= 0:
            poses.append(np.concatenate([data.mocap_pos[mocap], data.mocap_quat[mocap]]))
        else:
            poses.append(np.concatenate([model.body_pos[b], model.body_quat[b]]))
    return tuple(model.body(b).name for b in ids), np.array(poses).reshape(len(ids), 7)


def save_trajectories(path: str | Path, trajectories: list[StateTrajectory]) -> None:
    """One .npz: a JSON header (format, version, each episode's task, seed, options, instruction, props)
    and each episode's arrays under `<index>/<name>`."""
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "episodes": [
            {"task": t.task, "seed": t.seed, "options": t.options, "instruction": t.instruction, "props": list(t.props)}
            for t in trajectories
        ],
    }
    arrays = {f"{i}/{name}": getattr(t, name) for i, t in enumerate(trajectories) for name in _ARRAYS}
    np.savez_compressed(path, header=np.array(json.dumps(header)), **arrays)


def load_trajectories(path: str | Path) -> list[StateTrajectory]:
    """The trajectories `save_trajectories` wrote; ConfigError for a missing file, another file or format version."""
    try:
        npz = np.load(path)
    except FileNotFoundError as err:
        raise ConfigError(
            f"{path}: no such file; `python -m polyact.envs.rlbench_like.mjx.experts --out {path}` writes one"
        ) from err
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ConfigError(
            f"{path} is not a state trajectory file (not an .npz archive); save_trajectories writes them"
        ) from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ConfigError(f"{path} is a single .npy array, not a state trajectory file; save_trajectories writes them")
    with npz:
        if "header" not in npz.files:
            raise ConfigError(f"{path} is not a state trajectory file (no header); save_trajectories writes them")
        header = json.loads(str(npz["header"]))
        if header.get("format") != FORMAT_NAME or header.get("version") != FORMAT_VERSION:
            raise ConfigError(
                f"{path} is {header.get('format')} version {header.get('version')}; this polyact reads "
                f"{FORMAT_NAME} version {FORMAT_VERSION}"
            )
        return [
            StateTrajectory(
                task=ep["task"],
                seed=int(ep["seed"]),
                options=dict(ep["options"]),
                instruction=ep["instruction"],
                props=tuple(ep["props"]),
                **{name: npz[f"{i}/{name}"] for name in _ARRAYS},
            )
            for i, ep in enumerate(header["episodes"])
        ]

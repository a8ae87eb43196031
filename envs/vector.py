"""Many environments stepped in parallel worker processes through gymnasium's vector API.

Every environment of every suite has the same observation space for the same cameras and resolution
(the contract), so tasks of one suite can share a vector env: one batched policy forward serves all.
Workers are started with `spawn` so each creates its own EGL context (GL state does not survive fork).

gymnasium broadcasts one `options` dict to every sub-environment on reset. To start different episodes
in different workers (another task, another goal), `reset_envs` puts one options dict per
sub-environment under `options["per_env"]`, and each sub-environment picks its own entry by index.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from polyact.envs.config import EnvConfig
from polyact.envs.registry import make_env
from polyact.errors import ConfigError

PER_ENV = "per_env"


class _PerEnvOptions(gym.Wrapper):
    """Passes `options["per_env"][index]` (merged with the broadcast options) to the wrapped env."""

    def __init__(self, env: gym.Env, index: int):
        super().__init__(env)
        self.index = index

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        per_env = options.pop(PER_ENV, None)
        if per_env is not None:
            options.update(per_env[self.index] or {})
        return self.env.reset(seed=seed, options=options)


def _indexed(env_fn: Callable[[], gym.Env], index: int, main_pid: int) -> gym.Env:
    if os.getpid() != main_pid:
        # A worker leaves Ctrl-C to the main process, which closes the vector env: one clean stop
        # instead of a traceback from every worker. (gymnasium also builds env 0 in the main process.)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return _PerEnvOptions(env_fn(), index)


def vector_env(
    env_fns: Sequence[Callable[[], gym.Env]],
    asynchronous: bool = True,
    autoreset_mode: gym.vector.AutoresetMode = gym.vector.AutoresetMode.NEXT_STEP,
) -> gym.vector.VectorEnv:
    """A vector env of the environments `env_fns` build (in worker processes when `asynchronous`).

    With `asynchronous=False` every environment lives in this process: slower, but debuggers work.
    """
    if not env_fns:
        raise ConfigError("a vector env needs at least one environment")
    fns = [partial(_indexed, fn, i, os.getpid()) for i, fn in enumerate(env_fns)]
    if not asynchronous:
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=autoreset_mode)
    # Observations hold a str (the instruction), which shared memory cannot carry: send them by pipe.
    return gym.vector.AsyncVectorEnv(fns, shared_memory=False, context="spawn", autoreset_mode=autoreset_mode)


def make_vector_env(
    tasks: Sequence[str],
    cfg: EnvConfig,
    asynchronous: bool = True,
    autoreset_mode: gym.vector.AutoresetMode = gym.vector.AutoresetMode.NEXT_STEP,
) -> gym.vector.VectorEnv:
    """One sub-environment per entry of `tasks` (repeat a task for several copies of it)."""
    if not tasks:
        raise ConfigError("make_vector_env needs at least one task")
    return vector_env([partial(make_env, task, cfg) for task in tasks], asynchronous, autoreset_mode)


def reset_envs(
    vec: gym.vector.VectorEnv, requests: Mapping[int, tuple[int | None, dict[str, Any]]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Reset only the sub-environments in `requests` ({index: (seed, options)}), each with its own options.

    Returns the whole batch of observations (the others' current ones) and one info dict per
    sub-environment (empty for those not reset).
    """
    n = vec.num_envs
    seeds: list[int | None] = [None] * n
    per_env: list[dict[str, Any] | None] = [None] * n
    mask = np.zeros(n, dtype=bool)
    for i, (seed, options) in requests.items():
        seeds[i], per_env[i], mask[i] = seed, options, True
    obs, infos = vec.reset(seed=seeds, options={"reset_mask": mask, PER_ENV: per_env})
    return obs, split_infos(infos, n)


def split_infos(infos: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """gymnasium's batched info dict (values with `_key` masks) back to one dict per sub-environment."""
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, values in infos.items():
        if key.startswith("_"):
            continue
        present = infos.get(f"_{key}", np.ones(n, dtype=bool))
        nested = split_infos(values, n) if isinstance(values, Mapping) else None
        for i in np.flatnonzero(present):
            out[i][key] = nested[i] if nested is not None else values[i]
    return out

"""A trained checkpoint as deployment runs it: what it reads, what it returns, one forward pass per batch.

The server wraps it for remote clients; the ROS bridge can also run it in its own process, through
`infer`, the same call a `PolicyClient` offers, after the same checks of the observation.

The checkpoint describes itself: its `env_spec.json` names the actions, their bounds and the control
rate (policies/policy_dir.py), so `polyact serve policy=DIR` needs nothing else, from any working
directory. `spec=` overrides it (a dataset directory, an EnvSpec JSON file or a task name); a checkpoint
saved before policies recorded their spec is converted once with `polyact policy set-spec DIR SOURCE`
(`set_policy_spec`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyact.contract import EnvSpec, PolicyRequirements, check_compatible
from polyact.deploy.protocol import RequestError, check_observation, policy_metadata
from polyact.errors import ConfigError

CONFIG_FILE = "config.json"  # policies/policy_dir.py; repeated so that checking a path needs no torch


def load_env_spec(source: str, config: Any) -> EnvSpec:
    """The EnvSpec of a dataset directory (its meta.json), a JSON file or a task name (`reach-v3`, whose
    environment is built once, with the policy `config`'s cameras and image size, to read its contract)."""
    from polyact.data.format import MANIFEST_NAME

    path = Path(source)
    if (path / MANIFEST_NAME).is_file():
        from polyact.data.manifest import Manifest

        spec = Manifest.load(path).env_spec
        if spec is None:
            raise ConfigError(f"dataset {source!r} records no environment spec; give an EnvSpec JSON file instead")
        return spec
    if path.is_file():
        try:
            return EnvSpec.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{source!r} is not an EnvSpec JSON file ({type(err).__name__}: {err})") from None
    from polyact.envs.registry import all_suites

    if any(source in s.tasks for s in all_suites()):
        return _task_spec(source, config)
    raise ConfigError(
        f"{source!r} is neither a dataset directory (with {MANIFEST_NAME}), a JSON file holding "
        "EnvSpec.to_dict(), nor a task name (`polyact tasks` lists them); give the dataset the policy was "
        "trained on"
    )


def _task_spec(task: str, config: Any) -> EnvSpec:
    from polyact.envs.config import EnvConfig
    from polyact.envs.registry import make_env

    env = make_env(
        task, EnvConfig(tasks=task, cameras=list(config.cameras), height=config.image_height, width=config.image_width)
    )
    try:
        return env.contract
    finally:
        env.close()


def _policy_config(policy_dir: str) -> Any:
    """The PolicyConfig of a checkpoint directory, read without loading its weights."""
    from polyact.policies.config import PolicyConfig

    path = Path(policy_dir, CONFIG_FILE)
    if not path.is_file():
        raise ConfigError(
            f"policy={policy_dir!r} is not a checkpoint directory (one with {CONFIG_FILE} and model.safetensors)"
        )
    return PolicyConfig.from_dict(json.loads(path.read_text()))


def set_policy_spec(policy_dir: str, source: str) -> Path:
    """Give a checkpoint its environment spec (`polyact policy set-spec DIR SOURCE`): SOURCE is the dataset
    it was trained on, an EnvSpec JSON file or a task name. Refused, with every mismatch named, when the
    spec does not fit the checkpoint; returns the file written."""
    from polyact.policies.policy_dir import write_env_spec

    config = _policy_config(policy_dir)
    spec = load_env_spec(source, config)
    check_compatible(PolicyRequirements.of(config), spec, f"policy {policy_dir!r}")
    return write_env_spec(policy_dir, spec)


class ServedPolicy:
    """A VLAPolicy with its environment spec: `metadata`, `predict(histories)` and `infer(obs)`."""

    connected = True  # in process: never disconnected (the bridge asks every control period)

    def __init__(self, policy: Any, spec: EnvSpec, name: str, control_hz: float = 0.0):
        c = policy.config
        requirements = PolicyRequirements.of(c)
        check_compatible(requirements, spec, f"policy {name!r}")
        self.policy, self.spec = policy, spec
        self.inputs = requirements.inputs()
        self.history = c.history
        self._rng = np.random.default_rng()  # noise of requests that bring no seed
        self.metadata = policy_metadata(
            self.inputs, spec, c.history, c.chunk, c.replan_every, control_hz or spec.control_hz, name
        )

    def predict(
        self, histories: Sequence[Sequence[Mapping[str, Any]]], seeds: Sequence[int | None] | None = None
    ) -> np.ndarray:
        """Action chunks (B, H, A) float32 for B checked observation histories (each oldest first).

        Each row's sampling noise (diffusion, flow) is drawn for that row alone, from its seed when it
        has one, so a seeded request gets the same chunk whatever else shares its forward pass."""
        from polyact.policies.chunking import plan_chunks

        seeds = seeds if seeds is not None else [None] * len(histories)
        noise = [self._rng if s is None else np.random.default_rng(s) for s in seeds]
        return plan_chunks(self.policy, histories, noise)

    def infer(
        self, observation: Mapping[str, Any] | Sequence[Mapping[str, Any]], seed: int | None = None
    ) -> np.ndarray:
        """(H, A) for one observation or the last few, checked as the server checks a request."""
        steps = [observation] if isinstance(observation, Mapping) else list(observation)
        if not 1 <= len(steps) <= self.history:
            raise RequestError(f"give 1 to {self.history} observations, got {len(steps)}")
        keys = [*self.inputs, "instruction"]
        checked = [check_observation({k: v for k, v in s.items() if k in keys}, self.inputs) for s in steps]
        return self.predict([checked], [seed])[0]

    def warm_up(self) -> None:
        """One forward pass on a blank observation, so the first client does not pay for lazy setup."""
        blank: dict[str, Any] = {k: np.zeros(f.shape, f.dtype) for k, f in self.inputs.items()}
        blank.update({k: np.eye(3, dtype=np.float32) for k in self.inputs if k.startswith("intrinsics/")})
        blank.update({k: np.eye(4, dtype=np.float32) for k in self.inputs if k.startswith("extrinsics/")})
        self.infer({**blank, "instruction": "warm up"}, seed=0)


def load_served_policy(path: str, spec: str = "", device: str = "cpu", control_hz: float = 0.0) -> ServedPolicy:
    """The checkpoint directory `path` with the environment spec saved in it, or the one `spec` names
    (a dataset directory, an EnvSpec JSON file or a task name) when given."""
    from polyact.policies.policy_dir import read_env_spec

    config = _policy_config(path)
    env_spec = load_env_spec(spec, config) if spec else read_env_spec(path)
    if env_spec is None:
        raise ConfigError(
            f"{path!r} was saved before policies recorded their environment spec (it has no env_spec.json), "
            f"so nothing names its actions, their bounds and the control rate. Convert it once with "
            f"`polyact policy set-spec {path} SOURCE`, SOURCE being the dataset it was trained on, an EnvSpec "
            "JSON file or a task name; or give that SOURCE as spec= each time"
        )
    from polyact.policies import VLAPolicy

    policy = VLAPolicy.from_pretrained(path, map_location=device)
    return ServedPolicy(policy, env_spec, str(path), control_hz)

"""A trained checkpoint as deployment runs it: what it reads, what it returns, one forward pass per batch.

The server wraps it for remote clients; the ROS bridge can also run it in its own process, through
`infer`, the same call a `PolicyClient` offers, after the same checks of the observation.

A checkpoint's `config.json` knows its cameras, image size and dimensions but not the names, bounds and
rate of its actions, so the environment spec comes from elsewhere: the dataset the policy was trained
on (its `meta.json`; found through the training run's `run.json` when no spec is given), a JSON file
holding `EnvSpec.to_dict()`, or a task name, whose environment is built once to read its contract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyact.contract import EnvSpec, FeatureSpec
from polyact.deploy.protocol import RequestError, check_observation, policy_metadata
from polyact.errors import ConfigError
from polyact.eval.policy import PolicyRequirements, check_compatible

RUN_FILE = "run.json"  # written by `polyact train` next to the policy directory (train/loop.py)


def load_env_spec(source: str, config: Any) -> EnvSpec:
    """The EnvSpec of a dataset directory (its meta.json), a JSON file or a task name (`reach-v3`, built
    with the policy `config`'s cameras and image size)."""
    from polyact.data.format import MANIFEST_NAME
    from polyact.data.manifest import Manifest

    path = Path(source)
    if (path / MANIFEST_NAME).is_file():
        spec = Manifest.load(path).env_spec
        if spec is None:
            raise ConfigError(f"dataset {source!r} records no environment spec; give spec=ENV_SPEC.json instead")
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
        f"spec={source!r} is neither a dataset directory (with {MANIFEST_NAME}), a JSON file holding "
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


def training_dataset(policy_dir: str) -> str:
    """The dataset a `polyact train` run trained `policy_dir` on ('' when the run does not say)."""
    run_file = Path(policy_dir).resolve().parent / RUN_FILE
    if not run_file.is_file():
        return ""
    try:
        return str(json.loads(run_file.read_text()).get("dataset") or "")
    except (ValueError, AttributeError):
        return ""


def policy_inputs(config: Any) -> dict[str, FeatureSpec]:
    """The observation keys a policy reads (as training feeds them), with dtype and per-step shape."""
    shape = (config.image_height, config.image_width)
    inputs = {f"rgb/{cam}": FeatureSpec("uint8", (*shape, 3)) for cam in config.cameras}
    if config.vision.depth:
        for cam in config.cameras:
            inputs[f"depth/{cam}"] = FeatureSpec("float32", shape)
            inputs[f"intrinsics/{cam}"] = FeatureSpec("float32", (3, 3))
    inputs["state"] = FeatureSpec("float32", (config.state_dim,))
    if config.goal_dim:
        inputs["goal"] = FeatureSpec("float32", (config.goal_dim,))
    return inputs


class ServedPolicy:
    """A VLAPolicy with its environment spec: `metadata`, `predict(histories)` and `infer(obs)`."""

    connected = True  # in process: never disconnected (the bridge asks every control period)

    def __init__(self, policy: Any, spec: EnvSpec, name: str, control_hz: float = 0.0):
        c = policy.config
        requirements = PolicyRequirements(
            cameras=tuple(c.cameras),
            action_dim=c.action_dim,
            state_dim=c.state_dim,
            goal_dim=c.goal_dim,
            image_size=(c.image_height, c.image_width),
        )
        check_compatible(requirements, spec, f"policy {name!r}")
        self.policy, self.spec = policy, spec
        self.inputs = policy_inputs(c)
        self.history = c.history
        self._noise_shape = (c.chunk, c.action_dim)
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
        import torch

        from polyact.policies.history import stack_observations

        seeds = seeds if seeds is not None else [None] * len(histories)
        noise = np.stack(
            [
                (self._rng if s is None else np.random.default_rng(s)).standard_normal(self._noise_shape, np.float32)
                for s in seeds
            ]
        )  # (B, H, A); heads that do not sample ignore it
        batch = stack_observations(histories, self.history)
        return self.policy.predict_chunk(batch, noise=torch.as_tensor(noise, device=self.policy.device))

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
        self.infer({**blank, "instruction": "warm up"}, seed=0)


def load_served_policy(path: str, spec: str = "", device: str = "cpu", control_hz: float = 0.0) -> ServedPolicy:
    """The checkpoint directory `path` (VLAPolicy.from_pretrained) with the spec at `spec`; without one,
    the dataset its `polyact train` run recorded in run.json."""
    if not Path(path, "config.json").is_file():
        raise ConfigError(f"policy={path!r} is not a checkpoint directory (one with config.json and model.safetensors)")
    source = spec or training_dataset(path)
    if not source:
        raise ConfigError(
            f"spec= is required: {path!r} has no {RUN_FILE} of a `polyact train` run beside it; give the dataset "
            "the policy was trained on, an EnvSpec JSON file or a task name (they name the actions, their "
            "bounds and the control rate)"
        )
    from polyact.policies import VLAPolicy

    policy = VLAPolicy.from_pretrained(path, map_location=device)
    return ServedPolicy(policy, load_env_spec(source, policy.config), str(path), control_hz)

"""Checks that run before anything is written: the dataset's schema at creation, each episode at append.

Every refusal is a DatasetError that names the key and what was expected, so a collector bug is found
at the first episode, not when training reads garbage.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from polyact.contract import EnvSpec, FeatureSpec
from polyact.data.codecs import LOSSY_COMPRESSIONS, check_quality
from polyact.data.episode import Episode
from polyact.data.format import (
    ACTION,
    DEPTH_STORAGES,
    IMAGE_COMPRESSIONS,
    REWARD,
    SUCCESS,
    check_feature_key,
    obs_path,
)
from polyact.data.manifest import Manifest
from polyact.errors import DatasetError, closest_first, unknown_name


def check_schema(
    features: dict[str, FeatureSpec],
    action: FeatureSpec,
    env_spec: EnvSpec | None,
    fps: float,
    tasks: dict[str, list[str]],
    metadata: dict[str, Any] | None,
    image_compression: str,
    depth_storage: str = "float32",
) -> None:
    """Refuse a schema that could not be stored, or that contradicts its own env_spec."""
    if not features or not all(isinstance(s, FeatureSpec) for s in features.values()):
        raise DatasetError("features must be a non-empty dict of FeatureSpec, e.g. EnvSpec.features()")
    for key, spec in features.items():
        check_feature_key(key)
        if key == ACTION:
            raise DatasetError("'action' is the action feature's name; an observation feature cannot use it")
        try:
            np.dtype(spec.dtype)
        except TypeError:
            raise DatasetError(f"feature {key!r} has dtype {spec.dtype!r}, which numpy does not know") from None
    if not isinstance(action, FeatureSpec) or action.dtype != "float32" or len(action.shape) != 1:
        raise DatasetError(f"the action feature must be FeatureSpec('float32', (A,)), got {action!r}")
    if env_spec is not None:
        contract = env_spec.features()
        for key, spec in features.items():
            if key in contract and contract[key] != spec:
                raise DatasetError(f"feature {key!r} is {spec}, but the env_spec says {contract[key]}")
        if action != env_spec.action_feature():
            raise DatasetError(f"action is {action}, but the env_spec says {env_spec.action_feature()}")
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise DatasetError(f"fps must be a positive number, got {fps!r}")
    if not tasks or not all(isinstance(t, str) and t and isinstance(v, list | tuple) for t, v in tasks.items()):
        raise DatasetError("tasks must be a non-empty dict {task name: [instructions]}")
    if image_compression not in IMAGE_COMPRESSIONS:
        raise unknown_name("image compression", image_compression, IMAGE_COMPRESSIONS)
    if depth_storage not in DEPTH_STORAGES:
        raise unknown_name("depth storage", depth_storage, DEPTH_STORAGES)
    try:
        json.dumps({"tasks": tasks, "metadata": metadata}, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"tasks and metadata must be JSON-serialisable: {e}") from e


def check_storage(image_compression: str, depth_storage: str, image_quality: Any) -> dict[str, Any]:
    """The storage settings as DatasetWriter.create takes them and datasets report them (image_quality only
    where a lossy codec uses it); UnknownNameError or ConfigError naming the valid values otherwise."""
    if image_compression not in IMAGE_COMPRESSIONS:
        raise unknown_name("image compression", image_compression, IMAGE_COMPRESSIONS)
    if depth_storage not in DEPTH_STORAGES:
        raise unknown_name("depth storage", depth_storage, DEPTH_STORAGES)
    lossy = image_compression in LOSSY_COMPRESSIONS
    quality = {"image_quality": check_quality(image_quality)} if lossy else {}
    return {"image_compression": image_compression, "depth_storage": depth_storage, **quality}


def check_episode(episode: Episode, manifest: Manifest) -> dict[str, np.ndarray]:
    """The episode's arrays keyed by their path in the episode file, or DatasetError naming what is wrong."""
    if not isinstance(episode, Episode):
        raise DatasetError(f"add_episode takes a polyact.data.Episode, got {type(episode).__name__}")
    if episode.task not in manifest.tasks:
        raise DatasetError(
            f"episode rejected: task {episode.task!r} is not one of the dataset's tasks; "
            f"closest first: {', '.join(closest_first(str(episode.task), manifest.tasks)[:10])}"
        )
    if not isinstance(episode.instruction, str) or not episode.instruction:
        raise DatasetError(f"episode rejected: instruction must be a non-empty str, got {episode.instruction!r:.80}")
    if not isinstance(episode.seed, int | np.integer) or isinstance(episode.seed, bool):
        raise DatasetError(f"episode rejected: seed must be an int, got {episode.seed!r}")
    if not isinstance(episode.success, bool | np.bool_):
        raise DatasetError(f"episode rejected: success must be a bool, got {episode.success!r}")
    try:
        json.dumps(episode.extra, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"episode rejected: extra must be a JSON-serialisable dict: {e}") from e
    if not isinstance(episode.actions, np.ndarray) or episode.actions.ndim < 1 or len(episode.actions) < 1:
        raise DatasetError(f"episode rejected: actions must be a (T, A) array with T >= 1, got {episode.actions!r:.80}")
    length = len(episode.actions)
    observations = episode.observations
    missing = sorted(set(manifest.features) - set(observations))
    unexpected = sorted(set(observations) - set(manifest.features))
    if missing or unexpected:
        wrong = [f"lack {missing}"] if missing else []
        wrong += [f"have unexpected keys {unexpected}"] if unexpected else []
        raise DatasetError(
            f"episode rejected: observations {' and '.join(wrong)}; "
            f"the dataset's features are {sorted(manifest.features)}"
        )
    expected = {obs_path(k): (f"observations[{k!r}]", observations[k], spec) for k, spec in manifest.features.items()}
    expected[ACTION] = ("actions", episode.actions, manifest.action)
    expected[REWARD] = ("rewards", episode.rewards, FeatureSpec("float32", ()))
    expected[SUCCESS] = ("successes", episode.successes, FeatureSpec("bool", ()))
    arrays: dict[str, np.ndarray] = {}
    for name, (what, values, spec) in expected.items():
        want = f"{spec.dtype}{[length, *spec.shape]}"
        if not isinstance(values, np.ndarray):
            raise DatasetError(f"episode rejected: {what} is a {type(values).__name__}, expected an array {want}")
        if values.dtype != np.dtype(spec.dtype) or values.shape != (length, *spec.shape):
            raise DatasetError(
                f"episode rejected: {what} is {values.dtype}{list(values.shape)}, expected {want} "
                f"(T = {length} from actions)"
            )
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = np.argwhere(~np.isfinite(values))[0].tolist()
            raise DatasetError(f"episode rejected: {what} has a non-finite value at index {bad}")
        arrays[name] = values
    return arrays

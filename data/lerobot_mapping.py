"""Which LeRobot features become which polyact observations: LeRobot's usual names by default, or a file.

A mapping file (YAML, or JSON, which YAML reads too) names what differs from the defaults:

    cameras:                       # polyact camera name: LeRobot video or image feature
      front: observation.images.top
      wrist: observation.images.hand
    state: observation.state       # a float vector feature
    action: action                 # a float vector feature
    goal: observation.environment_state   # optional: a float vector feature, or "" for none
    tasks:                         # LeRobot task string: polyact task name (default: the string itself)
      "pick up the red cube": pick_cube

Defaults: every video or image feature (PNG frames in the parquet files, LeRobot's `use_videos=False`) is
a camera, named after what follows `observation.images.` (dots become underscores); `observation.state` is
the state, `action` the action, and `observation.environment_state` (where there is one) the goal: what
success depends on that the cameras do not show (polyact.contract).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from polyact.errors import ConfigError, DatasetError

CAMERA_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
GOAL_KEY = "observation.environment_state"
MAPPING_KEYS = ("cameras", "state", "action", "goal", "tasks")
CAMERA_DTYPES = ("video", "image")  # frames in mp4 files, or PNG bytes in the data files


@dataclass(frozen=True)
class FeatureMapping:
    cameras: dict[str, str]  # polyact camera name -> LeRobot video or image feature
    state: str = STATE_KEY
    action: str = ACTION_KEY
    goal: str = ""  # empty: no goal
    tasks: dict[str, str] = field(default_factory=dict)  # LeRobot task string -> polyact task name

    def task_name(self, task: str) -> str:
        return self.tasks.get(task, task)


def camera_name(key: str) -> str:
    """polyact's name of the camera in LeRobot video feature `key`: observation.images.top -> top."""
    return key.removeprefix(CAMERA_PREFIX).replace(".", "_")


def load_mapping(path: str, features: dict[str, dict[str, Any]], source: str) -> FeatureMapping:
    """The mapping in file `path` (defaults where it is silent; all defaults when `path` is empty), checked
    against the `features` of LeRobot dataset `source`."""
    given: dict[str, Any] = {}
    if path:
        try:
            given = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read the mapping file {path}: {e}") from e
        if not isinstance(given, dict) or set(given) - set(MAPPING_KEYS):
            raise ConfigError(
                f"{path}: a mapping has the keys {list(MAPPING_KEYS)} (see docs/lerobot.md); got {given!r:.200}"
            )
        for key in ("cameras", "tasks"):
            if not isinstance(given.get(key, {}), dict):
                raise ConfigError(f"{path}: {key} maps names to names, e.g. {{front: observation.images.top}}")
    videos = [k for k, f in features.items() if f.get("dtype") in CAMERA_DTYPES]
    mapping = FeatureMapping(
        cameras={str(k): str(v) for k, v in given["cameras"].items()}
        if "cameras" in given
        else {camera_name(k): k for k in videos},
        state=str(given.get("state", STATE_KEY)),
        action=str(given.get("action", ACTION_KEY)),
        goal=str(given.get("goal", GOAL_KEY if GOAL_KEY in features else "") or ""),
        tasks={str(k): str(v) for k, v in given.get("tasks", {}).items()},
    )
    named = {f"camera {c}": k for c, k in mapping.cameras.items()}
    named.update({"state": mapping.state, "action": mapping.action, **({"goal": mapping.goal} if mapping.goal else {})})
    for role, key in named.items():
        if key not in features:
            hint = "" if path else " (give a mapping file: docs/lerobot.md)"
            raise DatasetError(
                f"{source}: the {role} is LeRobot feature {key!r}, which the dataset does not have{hint}; "
                f"its features: {sorted(features)}"
            )
        dtype, shape = features[key].get("dtype"), list(features[key].get("shape", []))
        if role.startswith("camera") and dtype not in CAMERA_DTYPES:
            raise DatasetError(
                f"{source}: camera feature {key!r} is {dtype!r}; cameras are read from {list(CAMERA_DTYPES)} features"
            )
        if not role.startswith("camera") and (not str(dtype).startswith("float") or len(shape) != 1):
            raise DatasetError(f"{source}: the {role} feature {key!r} is {dtype}{shape}; it must be a float vector")
    if not mapping.cameras:
        raise DatasetError(
            f"{source} has no video or image feature to take as a camera; its features: {sorted(features)}"
        )
    return mapping

"""The gymnasium spaces of the contract (polyact/contract.py), for the Env and vector APIs.

They live here, not in the contract, so that nothing outside `envs/` needs gymnasium.
"""

from __future__ import annotations

import string

import numpy as np
from gymnasium import spaces

from polyact.contract import INSTRUCTION_MAX_CHARS, EnvSpec


def observation_space(spec: EnvSpec) -> spaces.Dict:
    """The space of one observation: a Box per array feature, Text for the instruction."""
    members: dict[str, spaces.Space] = {}
    for key, feat in spec.features().items():
        if feat.dtype == "uint8":
            members[key] = spaces.Box(0, 255, feat.shape, np.uint8)
        else:
            members[key] = spaces.Box(-np.inf, np.inf, feat.shape, np.float32)
    members["instruction"] = spaces.Text(max_length=INSTRUCTION_MAX_CHARS, min_length=1, charset=string.printable)
    return spaces.Dict(members)


def action_space(spec: EnvSpec) -> spaces.Box:
    """The Box of one action, between the spec's bounds."""
    low, high = np.asarray(spec.action.low, np.float32), np.asarray(spec.action.high, np.float32)
    return spaces.Box(low, high, dtype=np.float32)

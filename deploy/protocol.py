"""What the policy server accepts and answers, and the checks that turn any malformed request into one
error reply saying what was wrong and what is valid.

Client -> server (one binary frame each, msgpack maps; the codec is in client.py):

    {"type": "infer", "id": int, "observations": [obs, ...], "seed": int}   1..h observations, oldest
                                                               first; `seed` optional
    {"type": "health", "id": int}
    {"type": "metadata", "id": int}

Server -> client:

    {"type": "metadata", "protocol": 1, ..., "server": {..}}   first frame of every connection
    {"type": "actions", "id": int, "actions": (H, A) float32, "batch": b, "queue_ms": .., "infer_ms": ..}
    {"type": "health", "id": int, "status": "ok", ...}
    {"type": "error", "id": int | None, "error": str}

An observation maps the keys the metadata lists to wire arrays of exactly that dtype and shape, plus
`instruction` (str). Nothing here imports torch: the checks run on the server's event loop.
The whole protocol, with examples, is in docs/serve.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from polyact.contract import INSTRUCTION_MAX_CHARS, EnvSpec, FeatureSpec, check_array
from polyact.deploy.client import ARRAY_TAG, PROTOCOL_VERSION, decode_array, packb, unpackb
from polyact.errors import ContractError

MESSAGE_KEYS = {"infer": ("type", "id", "observations", "seed"), "health": ("type", "id"), "metadata": ("type", "id")}
MESSAGE_TYPES = tuple(MESSAGE_KEYS)
MAX_SEED = 2**63
_MAY_BE_INFINITE = ("depth/",)  # a depth camera reports "no return" as +inf; NaN is refused everywhere


class RequestError(ValueError):
    """A request the server refuses; the message goes back to the client as an error reply."""


def describe(inputs: Mapping[str, FeatureSpec]) -> str:
    """`instruction (str), rgb/corner uint8[32, 32, 3], ...`: what a valid observation holds."""
    parts = [f"{k} {f.dtype}{list(f.shape)}" for k, f in sorted(inputs.items())]
    return ", ".join([f"instruction (str, 1..{INSTRUCTION_MAX_CHARS} chars)", *parts])


def policy_metadata(
    inputs: Mapping[str, FeatureSpec],
    spec: EnvSpec,
    history: int,
    chunk: int,
    replan_every: int,
    control_hz: float,
    policy: str,
) -> dict[str, Any]:
    """The description of a policy that a client needs to drive a robot with it (msgpack-able)."""
    observation: dict[str, Any] = {k: f.to_dict() for k, f in sorted(inputs.items())}
    observation["instruction"] = {"dtype": "str", "shape": [], "max_chars": INSTRUCTION_MAX_CHARS}
    return {
        "protocol": PROTOCOL_VERSION,
        "policy": policy,
        "observation": observation,
        "state_names": list(spec.state_names),
        "goal_names": list(spec.goal_names),
        "cameras": sorted({k.split("/", 1)[1] for k in inputs if "/" in k}),
        "action": {
            "names": list(spec.action.names),
            "low": [float(v) for v in spec.action.low],
            "high": [float(v) for v in spec.action.high],
            "semantics": spec.action.semantics,
            "dtype": "float32",
            "shape": [chunk, spec.action.dim],
        },
        "chunk": chunk,
        "replan_every": replan_every,
        "history": history,
        "control_hz": float(control_hz),
    }


def parse_frame(frame: bytes | str, max_bytes: int) -> tuple[str, int | None, dict[str, Any]]:
    """(type, id, message) of one frame; RequestError for anything that is not a well-formed message."""
    if isinstance(frame, str):
        raise RequestError("expected a binary frame holding a msgpack map; got a text frame")
    if len(frame) > max_bytes:
        raise RequestError(f"message of {len(frame)} bytes exceeds the server's limit of {max_bytes} bytes")
    try:
        message = unpackb(frame)
    except Exception as err:  # msgpack raises several types for garbage: all of them mean the same here
        raise RequestError(f"frame is not a msgpack message ({type(err).__name__}: {err})"[:300]) from None
    if not isinstance(message, dict):
        raise RequestError(f"expected a msgpack map with a 'type' key; got a {type(message).__name__}")
    request_id = message.get("id")
    if request_id is not None and (not isinstance(request_id, int) or isinstance(request_id, bool)):
        raise RequestError(f"'id' must be an int, got {type(request_id).__name__}")
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        raise RequestError(f"unknown message type {kind!r:.60}; valid types: {', '.join(MESSAGE_TYPES)}")
    unknown = sorted(str(k) for k in message if k not in MESSAGE_KEYS[kind])
    if unknown:
        raise RequestError(f"{kind} message has unknown keys {unknown}; valid keys: {', '.join(MESSAGE_KEYS[kind])}")
    return kind, request_id, message


def request_id_of(frame: bytes | str) -> int | None:
    """The id of a frame that failed to parse, when it has one, so the error reply can carry it."""
    try:
        message = unpackb(frame) if isinstance(frame, bytes) else None
        rid = message.get("id") if isinstance(message, dict) else None
        return rid if isinstance(rid, int) and not isinstance(rid, bool) else None
    except Exception:  # the frame was already found malformed; no id then
        return None


def payload_limit(inputs: Mapping[str, FeatureSpec], history: int) -> int:
    """The default largest request: twice the largest valid infer message, plus 64 KiB for the framing."""
    step = sum(math.prod(f.shape) * np.dtype(f.dtype).itemsize for f in inputs.values()) + 4 * INSTRUCTION_MAX_CHARS
    return 2 * history * step + 65536


def parse_seed(message: Mapping[str, Any]) -> int | None:
    """The infer message's optional noise seed."""
    seed = message.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < MAX_SEED):
        raise RequestError(f"'seed' must be an int in [0, 2**63) or absent, got {seed!r:.40}")
    return seed


def decode_observations(message: Mapping[str, Any], inputs: Mapping[str, FeatureSpec], history: int) -> list[dict]:
    """The checked observations (oldest first) of an infer message."""
    steps = message.get("observations")
    if not isinstance(steps, list) or not 1 <= len(steps) <= history:
        raise RequestError(
            f"'observations' must be a list of 1 to {history} observation maps (oldest first); "
            f"got {type(steps).__name__ if not isinstance(steps, list) else f'{len(steps)} items'}"
        )
    out = []
    for i, raw in enumerate(steps):
        if not isinstance(raw, dict):
            raise RequestError(f"observation {i} must be a map, got {type(raw).__name__}")
        obs = {}
        for key, value in raw.items():
            if isinstance(value, dict) and ARRAY_TAG in value:
                try:
                    value = decode_array(value)
                except ValueError as err:
                    raise RequestError(f"observation {i}: {key}: {err}") from None
            obs[key] = value
        out.append(check_observation(obs, inputs, where=f"observation {i}: " if len(steps) > 1 else ""))
    return out


def check_observation(obs: Mapping[str, Any], inputs: Mapping[str, FeatureSpec], where: str = "") -> dict[str, Any]:
    """The observation if it holds exactly what the policy reads, with the right dtypes, shapes and
    finite values; otherwise RequestError listing what is valid."""
    expected = [*inputs, "instruction"]
    missing = sorted(k for k in expected if k not in obs)
    unknown = sorted(str(k) for k in obs if k not in expected)
    if missing or unknown:
        what = "; ".join(
            p for p in (f"lacks {missing}" if missing else "", f"has unknown keys {unknown}" if unknown else "") if p
        )
        raise RequestError(f"{where}observation {what}; the policy reads: {describe(inputs)}")
    for key, feat in inputs.items():
        try:
            check_array(key, obs[key], feat)
        except ContractError as err:
            raise RequestError(f"{where}{err}") from None
        value = obs[key]
        if value.dtype.kind == "f" and not np.isfinite(value).all() and not _allowed_infinity(key, value):
            raise RequestError(f"{where}{key} has non-finite values (NaN, or inf outside depth images)")
        if key.startswith("intrinsics/") and not _is_pinhole(value):
            raise RequestError(
                f"{where}{key} must be a pinhole matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0 "
                f"(the policy inverts it), got {np.round(value, 3).tolist()}"
            )
    instruction = obs["instruction"]
    if not isinstance(instruction, str) or not 0 < len(instruction) <= INSTRUCTION_MAX_CHARS:
        raise RequestError(
            f"{where}instruction must be a str of 1 to {INSTRUCTION_MAX_CHARS} characters, got {instruction!r:.60}"
        )
    return dict(obs)


def _allowed_infinity(key: str, value: np.ndarray) -> bool:
    return key.startswith(_MAY_BE_INFINITE) and not np.isnan(value).any() and not np.isneginf(value).any()


def _is_pinhole(k: np.ndarray) -> bool:
    lower = (k[1, 0], k[2, 0], k[2, 1])
    return bool(k[0, 0] > 0 and k[1, 1] > 0 and k[2, 2] == 1 and not any(lower))


def error_frame(request_id: int | None, message: str) -> bytes:
    return packb({"type": "error", "id": request_id, "error": message})


def actions_frame(request_id: int | None, actions: np.ndarray, batch: int, queue_ms: float, infer_ms: float) -> bytes:
    return packb(
        {
            "type": "actions",
            "id": request_id,
            "actions": np.asarray(actions, np.float32),
            "batch": batch,
            "queue_ms": round(queue_ms, 3),
            "infer_ms": round(infer_ms, 3),
        }
    )

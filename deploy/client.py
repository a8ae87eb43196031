"""The robot side of `polyact serve`: observations in, action chunks out, over one websocket.

Copy this file alone onto a robot computer: it needs numpy, msgpack and websockets, nothing of torch or
polyact (the habit of openpi's numpy-only client). It also holds the wire codec, which the server
imports from here, so the two ends cannot drift apart.

    client = PolicyClient("ws://127.0.0.1:8765", token=None)
    client.metadata                       # what the policy reads and returns: keys, dtypes, shapes, bounds
    chunk = client.infer(observation)     # (H, A) float32, raw action units
    client.health()                       # {"status": "ok", ...}

Wire format, protocol version 1 (docs/serve.md): every message is one binary websocket frame holding
a msgpack map with a "type" key. Arrays travel as maps {"__ndarray__": True, "dtype": "<f4", "shape":
[...], "data": <bytes>}: little-endian, C order, a fixed set of dtypes, never pickle.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.protocol import State
from websockets.sync.client import connect

PROTOCOL_VERSION = 1
ARRAY_TAG = "__ndarray__"
DTYPES = ("|b1", "|u1", "<u2", "<i4", "<i8", "<f4", "<f8")  # the dtypes that travel; anything else is refused
MAX_DIMS = 8
MAX_DIM_SIZE = 2**31  # per axis; larger shapes are refused before numpy sees them


class PolicyServerError(RuntimeError):
    """The server refused a request; the message says what was wrong and what is valid."""


class AuthenticationError(PolicyServerError):
    """The server refused the connection's token."""


class ServerUnavailable(ConnectionError):
    """No answer from the server: refused, lost or timed out. The next call tries to reconnect."""


# --- the codec --------------------------------------------------------------------------------------
def encode_array(array: np.ndarray) -> dict[str, Any]:
    """An array in its wire form (little-endian, C order)."""
    array = np.asarray(array)
    little = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    if little.str not in DTYPES:
        raise TypeError(f"arrays of dtype {array.dtype} cannot be sent; the wire carries {', '.join(DTYPES)}")
    data = np.asarray(array, dtype=little, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    return {ARRAY_TAG: True, "dtype": little.str, "shape": list(data.shape), "data": data.tobytes()}


def decode_array(value: Any) -> np.ndarray:
    """An array from its wire form, or ValueError naming what is malformed (read-only: no copy)."""
    if not isinstance(value, Mapping) or set(value) != {ARRAY_TAG, "dtype", "shape", "data"}:
        keys = sorted(map(str, value)) if isinstance(value, Mapping) else type(value).__name__
        raise ValueError(f"expected an array map with keys {ARRAY_TAG}, dtype, shape, data; got {keys}")
    dtype, shape, data = value["dtype"], value["shape"], value["data"]
    if dtype not in DTYPES:
        raise ValueError(f"array dtype {dtype!r:.40} is not one of {', '.join(DTYPES)}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < MAX_DIM_SIZE for s in shape)
    ):
        raise ValueError(
            f"array shape must be a list of at most {MAX_DIMS} ints in [0, {MAX_DIM_SIZE}), got {shape!r:.80}"
        )
    if not isinstance(data, bytes):
        raise ValueError(f"array data must be bytes, got {type(data).__name__}")
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise ValueError(f"array data has {len(data)} bytes; {dtype}{shape} needs {expected}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return encode_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot send a {type(obj).__name__}; send numpy arrays, numbers, str, lists and dicts")


def packb(message: Mapping[str, Any]) -> bytes:
    """One message as a msgpack frame; numpy arrays in it are encoded."""
    return msgpack.packb(message, default=_default, use_bin_type=True)


def unpackb(frame: bytes) -> Any:
    """A msgpack frame as Python objects; arrays stay in their wire form (see `decode_arrays`)."""
    return msgpack.unpackb(frame, raw=False)


def decode_arrays(obj: Any) -> Any:
    """`obj` with every wire-form array replaced by an ndarray."""
    if isinstance(obj, dict):
        if ARRAY_TAG in obj:
            return decode_array(obj)
        return {k: decode_arrays(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_arrays(v) for v in obj]
    return obj


# --- the client -------------------------------------------------------------------------------------
class PolicyClient:
    """A connection to `polyact serve` that reconnects on the next call after a failure.

    `timeout` bounds each request (seconds, reconnecting included); `connect_timeout` bounds opening a
    connection. Calls are serialised: share one client between threads or give each thread its own.
    If the server comes back serving a different policy, calls raise PolicyServerError.
    """

    def __init__(
        self,
        url: str = "ws://127.0.0.1:8765",
        token: str | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ):
        self.url, self.timeout, self.connect_timeout = url, timeout, connect_timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stack: contextlib.ExitStack | None = None
        self._ws: Any = None
        self._metadata: dict[str, Any] | None = None
        with self._lock:
            self._connect(time.monotonic() + connect_timeout)

    @property
    def metadata(self) -> dict[str, Any]:
        """What the server sent on connect: observation keys with dtype and shape, action names and
        bounds, chunk size H, history h, control rate, limits."""
        assert self._metadata is not None
        return self._metadata

    @property
    def connected(self) -> bool:
        """Whether the connection is open now (a server killed a moment ago shows here within ms)."""
        ws = self._ws
        return ws is not None and ws.protocol.state is State.OPEN

    def infer(
        self, observation: Mapping[str, Any] | Sequence[Mapping[str, Any]], seed: int | None = None
    ) -> np.ndarray:
        """An action chunk (H, A) float32 for one observation, or for the last few (oldest first) when
        the policy reads a history. Keys the policy does not read are not sent. A `seed` makes the chunk
        of a sampling head (diffusion, flow) repeatable, whichever requests share its batch."""
        return self.infer_reply(observation, seed)[0]

    def infer_reply(
        self, observation: Mapping[str, Any] | Sequence[Mapping[str, Any]], seed: int | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """`infer` with the rest of the reply: `batch` (requests in its forward pass), `queue_ms`, `infer_ms`."""
        steps = [observation] if isinstance(observation, Mapping) else list(observation)
        keys = set(self.metadata["observation"])
        wire = [{k: v for k, v in step.items() if k in keys} for step in steps]
        message: dict[str, Any] = {"type": "infer", "observations": wire}
        if seed is not None:
            message["seed"] = seed
        reply = self._request(message)
        actions = np.array(decode_array(reply["actions"]), dtype=np.float32)
        return actions, {k: v for k, v in reply.items() if k not in ("type", "id", "actions")}

    def health(self) -> dict[str, Any]:
        """The server's status and counters (requests, errors, batches, uptime)."""
        reply = self._request({"type": "health"})
        return {k: v for k, v in reply.items() if k not in ("type", "id")}

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------------
    def _connect(self, deadline: float) -> None:
        self._disconnect()
        stack = contextlib.ExitStack()
        try:
            # entered as a context manager: the form every websockets version from 13 on accepts
            ws = stack.enter_context(
                connect(
                    self.url,
                    additional_headers=self._headers,
                    open_timeout=max(0.01, deadline - time.monotonic()),
                    compression=None,
                    max_size=None,
                    close_timeout=1.0,
                )
            )
            hello = unpackb(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        except InvalidStatus as err:
            stack.close()
            status = err.response.status_code
            body = bytes(err.response.body or b"").decode(errors="replace").strip()
            if status == 401:
                raise AuthenticationError(f"{self.url} refused the connection: {body}") from None
            raise ServerUnavailable(f"{self.url} answered HTTP {status}: {body}") from None
        except (OSError, TimeoutError, WebSocketException, msgpack.UnpackException, ValueError) as err:
            stack.close()
            raise ServerUnavailable(
                f"cannot reach the policy server at {self.url} ({type(err).__name__}: {err}); "
                "is `polyact serve` running there?"
            ) from None
        if not isinstance(hello, dict) or hello.get("type") != "metadata":
            stack.close()
            raise PolicyServerError(f"{self.url} did not start with its metadata; is it a polyact policy server?")
        if hello.get("protocol") != PROTOCOL_VERSION:
            stack.close()
            raise PolicyServerError(
                f"{self.url} speaks protocol {hello.get('protocol')!r}; this client speaks {PROTOCOL_VERSION}"
            )
        hello = {k: v for k, v in hello.items() if k != "type"}
        if self._metadata is not None and _policy_part(hello) != _policy_part(self._metadata):
            stack.close()
            raise PolicyServerError(
                f"{self.url} now serves a different policy than when this client connected; "
                "make a new PolicyClient (and check the robot's configuration against its metadata)"
            )
        self._stack, self._ws, self._metadata = stack, ws, hello

    def _disconnect(self) -> None:
        if self._stack is not None:
            with contextlib.suppress(Exception):
                self._stack.close()
        self._stack = self._ws = None

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            deadline = time.monotonic() + self.timeout
            if not self.connected:
                self._connect(min(deadline, time.monotonic() + self.connect_timeout))
            message["id"] = request_id = next(self._ids)
            try:
                self._ws.send(packb(message))
                while True:
                    reply = unpackb(self._ws.recv(timeout=max(0.0, deadline - time.monotonic())))
                    if isinstance(reply, dict) and reply.get("id") == request_id:
                        break  # earlier replies that arrived after their request timed out are skipped
            except TimeoutError:
                raise ServerUnavailable(
                    f"no answer from {self.url} within {self.timeout:.1f} s (a late answer is discarded)"
                ) from None
            except (ConnectionClosed, OSError) as err:
                self._disconnect()
                raise ServerUnavailable(
                    f"lost the connection to {self.url} ({err}); the next call reconnects"
                ) from None
            if reply.get("type") == "error":
                raise PolicyServerError(f"{self.url}: {reply.get('error')}")
            return reply


def _policy_part(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata without the server's own settings (limits may change across a restart)."""
    return {k: v for k, v in metadata.items() if k != "server"}

"""`polyact serve`: one policy behind a websocket, answering many robots, batching them into one forward pass.

Why a websocket carrying msgpack rather than gRPC: openpi serves its policies the same way, and it suits
a robot computer. The client needs numpy, msgpack and websockets, all pure wheels (no protobuf
toolchain, no generated stubs to keep in step with the server); arrays travel as raw bytes with their
dtype and shape, so encoding costs a memcpy; one long-lived connection per robot avoids per-request
handshakes; and the protocol (deploy/protocol.py, docs/serve.md) is small enough to read in a minute.

The event loop only decodes and checks requests and sends replies; forward passes run in one worker
thread (deploy/batching.py), so health checks and error replies keep flowing while the policy computes.
A request that fails its checks gets an error reply on its own connection; nothing else notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import numpy as np
from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from polyact.deploy.batching import MicroBatcher
from polyact.deploy.client import packb
from polyact.deploy.config import ServeConfig, resolve_token
from polyact.deploy.policy import ServedPolicy, load_served_policy
from polyact.deploy.protocol import (
    RequestError,
    actions_frame,
    decode_observations,
    error_frame,
    parse_frame,
    parse_seed,
    payload_limit,
    request_id_of,
)
from polyact.errors import ConfigError

HARD_LIMIT_FACTOR = 4  # frames up to this many times max_payload_bytes get an error reply; larger close the socket


class PolicyServer:
    """The request handling of `polyact serve`, independent of how its event loop is run."""

    def __init__(self, policy: ServedPolicy, config: ServeConfig):
        self.policy, self.config = policy, config
        self.token = resolve_token(config.token)
        self.max_payload = config.max_payload_bytes or payload_limit(policy.inputs, policy.history)
        self.metadata = {
            **policy.metadata,
            "control_hz": float(config.control_hz or policy.metadata["control_hz"]),
            "server": {
                "max_batch": config.max_batch,
                "max_wait_ms": config.max_wait_ms,
                "max_payload_bytes": self.max_payload,
                "auth": "bearer" if self.token else "none",
            },
        }
        self._hello = packb({"type": "metadata", **self.metadata})
        self.counts: Counter[str] = Counter()
        self.open_connections = 0
        self._started = time.monotonic()
        self._batcher: MicroBatcher | None = None
        self.address: tuple[str, int] | None = None  # (host, port) the socket listens on, once running

    async def run(self, on_ready: Callable[[str], None], stop: asyncio.Event) -> None:
        """Serve until `stop` is set; `on_ready(url)` once the socket listens."""
        self._batcher = MicroBatcher(
            self._forward, self.config.max_batch, self.config.max_wait_ms / 1000, lambda: self.open_connections
        )
        self._batcher.start()
        try:
            async with serve(
                self._handle,
                self.config.host,
                self.config.port,
                process_request=self._admit,
                max_size=HARD_LIMIT_FACTOR * self.max_payload,
                compression=None,  # arrays are incompressible noise to deflate, and it costs latency
            ) as server:
                self.address = server.sockets[0].getsockname()[:2]
                on_ready(f"ws://{_url_host(self.config.host)}:{self.address[1]}")
                await stop.wait()
        finally:
            await self._batcher.stop()  # after the server closed: handlers waiting on a batch got their answers

    def health(self) -> dict[str, Any]:
        assert self._batcher is not None
        return {
            "status": "ok",
            "policy": self.policy.metadata["policy"],
            "uptime_s": round(time.monotonic() - self._started, 3),
            "connections": self.open_connections,
            "requests": dict(self.counts),
            "batch_sizes": {str(size): n for size, n in sorted(self._batcher.batch_sizes.items())},
        }

    # --- connections --------------------------------------------------------------------------------
    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse a handshake without the right token (compared in constant time) or beyond the limit."""
        if self.token is not None:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme != "Bearer" or not hmac.compare_digest(given.encode(), self.token.encode()):
                self.counts["refused_auth"] += 1
                return connection.respond(
                    HTTPStatus.UNAUTHORIZED,
                    "missing or wrong token: send the header 'Authorization: Bearer <token>' with the token the "
                    "server was started with (token= or $POLYACT_TOKEN)\n",
                )
        if self.open_connections >= self.config.max_connections:
            self.counts["refused_full"] += 1
            return connection.respond(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"the server is at its limit of {self.config.max_connections} connections (max_connections)\n",
            )
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.open_connections += 1
        try:
            await ws.send(self._hello)
            async for frame in ws:
                await ws.send(await self._answer(frame))
        except ConnectionClosed:
            pass  # the client left, perhaps mid-request: nothing to answer
        finally:
            self.open_connections -= 1
            if self._batcher is not None:
                self._batcher.wake()  # a batch waiting for this client can go now

    async def _answer(self, frame: bytes | str) -> bytes:
        """The reply to one frame: never raises for anything a client can send."""
        request_id = None
        try:
            kind, request_id, message = parse_frame(frame, self.max_payload)
            if kind == "health":
                self.counts["health"] += 1
                return packb({"type": "health", "id": request_id, **self.health()})
            if kind == "metadata":
                self.counts["metadata"] += 1
                return packb({"type": "metadata", "id": request_id, **self.metadata})
            observations = decode_observations(message, self.policy.inputs, self.policy.history)
            seed = parse_seed(message)
        except RequestError as err:
            self.counts["errors"] += 1
            if request_id is None and len(frame) <= self.max_payload:
                request_id = request_id_of(frame)
            return error_frame(request_id, str(err))
        assert self._batcher is not None
        try:
            served = await self._batcher.submit((observations, seed))
        except Exception as err:  # the policy failed on this request alone (the batcher isolates it)
            self.counts["errors"] += 1
            return error_frame(request_id, f"the policy failed on this request ({type(err).__name__}: {err})"[:500])
        if not np.isfinite(served.result).all():
            self.counts["errors"] += 1
            return error_frame(request_id, "the policy produced non-finite actions for this observation; none sent")
        self.counts["infer"] += 1
        return actions_frame(request_id, served.result, served.batch, served.queue_s * 1e3, served.run_s * 1e3)

    def _forward(self, items: list[tuple[list[dict[str, Any]], int | None]]) -> list[Any]:
        """One forward pass for a batch of checked requests (in the worker thread)."""
        return list(self.policy.predict([obs for obs, _ in items], [seed for _, seed in items]))


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"  # reachable from this machine; other machines use one of its addresses
    return f"[{host}]" if ":" in host else host


class ServerThread:
    """A PolicyServer running on its own event loop in a background thread (tests, benchmarks, the ROS
    bridge's in-process tests). `url` once started; `stop()` closes every connection and returns when
    the port is free again."""

    def __init__(self, policy: ServedPolicy, config: ServeConfig):
        self.server = PolicyServer(policy, config)
        self.url = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="policy-server", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    @property
    def port(self) -> int:
        """The port it listens on (the one to restart it on, to test reconnection)."""
        assert self.server.address is not None, "start() the server first"
        return self.server.address[1]

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await self.server.run(self._on_ready, self._stop)

        try:
            asyncio.run(main())
        except BaseException as err:  # e.g. the port is taken: re-raised by start()
            self._error = err
        finally:
            self._ready.set()

    def _on_ready(self, url: str) -> None:
        self.url = url
        self._ready.set()


@contextlib.contextmanager
def serve_in_thread(policy: ServedPolicy, config: ServeConfig | None = None) -> Iterator[ServerThread]:
    """`with serve_in_thread(policy, ServeConfig(port=0)) as server:` connect to `server.url`; the server
    stops on leaving the block (or earlier, with `server.stop()`, to test what clients do then)."""
    server = ServerThread(policy, config or ServeConfig(port=0)).start()
    try:
        yield server
    finally:
        server.stop()


def load(cfg: ServeConfig) -> ServedPolicy:
    """The checkpoint of `cfg.policy`, ready to serve (threads set, warmed up)."""
    if not cfg.policy:
        raise ConfigError("policy= is required: a checkpoint directory, e.g. runs/NAME/policy from `polyact train`")
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    policy = load_served_policy(cfg.policy, cfg.spec, cfg.device)
    policy.warm_up()
    return policy


def run(cfg: ServeConfig) -> None:
    """`polyact serve`: serve until Ctrl-C or SIGTERM."""
    policy = load(cfg)
    server = PolicyServer(policy, cfg)
    meta = server.metadata

    def ready(url: str) -> None:
        inputs = ", ".join(f"{k} {v['dtype']}{v['shape']}" for k, v in meta["observation"].items())
        print(
            f"serving {meta['policy']} at {url} ({'token required' if server.token else 'no token'})\n"
            f"  observation: {inputs}\n"
            f"  actions: ({meta['chunk']}, {len(meta['action']['names'])}) {meta['action']['names']} "
            f"at {meta['control_hz']:g} Hz; batches of up to {cfg.max_batch}, waiting {cfg.max_wait_ms:g} ms",
            flush=True,
        )
        if cfg.host not in ("127.0.0.1", "localhost", "::1") and not server.token:
            print("  warning: serving beyond this machine without a token (set token= or $POLYACT_TOKEN)", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.run(ready, stop)

    asyncio.run(main())
    print(f"stopped; answered {server.counts['infer']} inference requests, refused {server.counts['errors']}")

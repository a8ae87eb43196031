"""The policy server on loopback with a tiny policy, over real websocket connections.

No test depends on timing: batching is forced with a batch wait far longer than any test (a batch goes
out when it is full), and the event loop's freedom during a forward pass is shown with a forward pass
that waits for the test's signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from polyact.deploy.client import (
    AuthenticationError,
    PolicyClient,
    PolicyServerError,
    ServerUnavailable,
    decode_array,
    packb,
    unpackb,
)
from polyact.deploy.config import TOKEN_ENV, ServeConfig
from polyact.deploy.server import HARD_LIMIT_FACTOR, serve_in_thread

FOREVER_MS = 3_600_000.0  # a batch wait no test reaches: batches go out when full
TIMEOUT = 120.0  # client request timeout: only a hung server reaches it


def wire(obs: dict[str, Any], keys) -> dict[str, Any]:
    return {k: v for k, v in obs.items() if k in keys}


@pytest.fixture(scope="module")
def server(served):
    with serve_in_thread(served, ServeConfig(port=0)) as running:
        yield running


@pytest.fixture(scope="module")
def bystander(server):
    """A client connected throughout, which must keep getting answers whatever the others send."""
    with PolicyClient(server.url, timeout=TIMEOUT) as client:
        yield client


def raw_infer(obs: dict[str, Any], request_id: int = 1, **extra: Any) -> bytes:
    return packb({"type": "infer", "id": request_id, "observations": [obs], **extra})


def ask(ws, frame: bytes | str) -> dict[str, Any]:
    ws.send(frame)
    return unpackb(ws.recv(timeout=TIMEOUT))


# --- the normal path ------------------------------------------------------------------------------------
def test_connect_sends_the_metadata_first(server, served):
    with connect(server.url) as ws:
        hello = unpackb(ws.recv(timeout=TIMEOUT))
    assert hello["type"] == "metadata" and hello["protocol"] == 1
    assert hello["observation"]["rgb/corner"] == {"dtype": "uint8", "shape": [32, 32, 3]}
    assert set(hello["observation"]) == {*served.inputs, "instruction"}
    assert hello["action"]["shape"] == [4, 4] and hello["action"]["names"] == ["dx", "dy", "dz", "grip"]
    assert hello["chunk"] == 4 and hello["history"] == 2 and hello["control_hz"] == 10.0
    assert hello["server"]["max_batch"] == 8 and hello["server"]["auth"] == "none"


def test_infer_returns_the_in_process_chunk(bystander, served, observation):
    for seed in range(3):
        obs = observation(seed)
        actions, reply = bystander.infer_reply(obs)
        assert actions.shape == (4, 4) and actions.dtype == np.float32
        assert reply["batch"] == 1
        np.testing.assert_array_equal(actions, served.infer(obs))
    history = [observation(5), observation(6)]
    np.testing.assert_array_equal(bystander.infer(history), served.infer(history))


def test_health_reports_counters(bystander, observation):
    before = bystander.health()
    bystander.infer(observation(0))
    after = bystander.health()
    assert after["status"] == "ok" and after["connections"] >= 1 and after["uptime_s"] > 0
    assert after["requests"]["infer"] == before["requests"].get("infer", 0) + 1
    assert sum(after["batch_sizes"].values()) == sum(before["batch_sizes"].values()) + 1


def test_binds_to_loopback_by_default(server):
    assert ServeConfig().host == "127.0.0.1"
    assert server.server.address[0] == "127.0.0.1" and server.url.startswith("ws://127.0.0.1:")


# --- batching ---------------------------------------------------------------------------------------
def test_concurrent_clients_share_one_forward_pass_and_get_the_unbatched_answers(served, observation):
    with serve_in_thread(served, ServeConfig(port=0, max_batch=4, max_wait_ms=FOREVER_MS)) as running:
        clients = [PolicyClient(running.url, timeout=TIMEOUT) for _ in range(4)]
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda i: clients[i].infer_reply(observation(i)), range(4)))
        health = clients[0].health()
        for client in clients:
            client.close()
    assert [reply["batch"] for _, reply in replies] == [4, 4, 4, 4]
    assert health["batch_sizes"] == {"4": 1}
    for i, (actions, _) in enumerate(replies):
        np.testing.assert_allclose(actions, served.infer(observation(i)), rtol=1e-5, atol=1e-6)


def test_a_batch_goes_out_once_every_connected_client_is_in_it(served, observation):
    config = ServeConfig(port=0, max_batch=8, max_wait_ms=FOREVER_MS)
    with serve_in_thread(served, config) as running, PolicyClient(running.url, timeout=TIMEOUT) as alone:
        assert alone.infer_reply(observation(0))[1]["batch"] == 1  # nobody else could join: no wait
    with serve_in_thread(served, config) as running:
        pair = [PolicyClient(running.url, timeout=TIMEOUT) for _ in range(2)]
        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda i: pair[i].infer_reply(observation(i)), range(2)))
        for client in pair:
            client.close()
    assert [reply["batch"] for _, reply in replies] == [2, 2]
    with serve_in_thread(served, config) as running:
        waiting, leaving = PolicyClient(running.url, timeout=TIMEOUT), PolicyClient(running.url, timeout=TIMEOUT)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(waiting.infer_reply, observation(0))
            leaving.close()  # the batch stops waiting for it
            assert pending.result()[1]["batch"] == 1
        waiting.close()


def test_max_batch_one_never_batches(served, observation):
    with serve_in_thread(served, ServeConfig(port=0, max_batch=1)) as running:
        clients = [PolicyClient(running.url, timeout=TIMEOUT) for _ in range(4)]
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda i: clients[i].infer_reply(observation(i)), range(4)))
        for client in clients:
            client.close()
    assert [reply["batch"] for _, reply in replies] == [1, 1, 1, 1]
    for i, (actions, _) in enumerate(replies):
        np.testing.assert_array_equal(actions, served.infer(observation(i)))


class GatedPolicy:
    """The served policy, whose forward pass waits for `release` and which fails or returns NaN on cue."""

    def __init__(self, served):
        self.served, self.metadata, self.inputs, self.history = served, served.metadata, served.inputs, served.history
        self.entered, self.release = threading.Event(), threading.Event()

    def predict(self, histories, seeds=None):
        self.entered.set()
        self.release.wait()
        instructions = [steps[-1]["instruction"] for steps in histories]
        if "explode" in instructions:
            raise RuntimeError("the model exploded")
        chunks = self.served.predict(histories, seeds)
        chunks[[i for i, text in enumerate(instructions) if text == "nan"]] = np.nan
        return chunks


def test_the_event_loop_answers_while_a_forward_pass_runs(served, observation):
    gated = GatedPolicy(served)
    with serve_in_thread(gated, ServeConfig(port=0, max_batch=1)) as running:
        busy, other = PolicyClient(running.url, timeout=TIMEOUT), PolicyClient(running.url, timeout=TIMEOUT)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(busy.infer, observation(0))
            gated.entered.wait()
            assert other.health()["status"] == "ok"  # answered while the forward pass is stuck
            with pytest.raises(PolicyServerError, match="state: got float32"):
                other.infer({**observation(1), "state": np.zeros(9, np.float32)})
            gated.release.set()
            np.testing.assert_array_equal(pending.result(), served.infer(observation(0)))
        busy.close()
        other.close()


def test_a_request_that_breaks_the_model_fails_alone(served, observation):
    gated = GatedPolicy(served)
    gated.release.set()
    with serve_in_thread(gated, ServeConfig(port=0, max_batch=3, max_wait_ms=FOREVER_MS)) as running:
        clients = [PolicyClient(running.url, timeout=TIMEOUT) for _ in range(3)]
        texts = ["explode", "open the drawer", "nan"]

        def call(i: int):
            try:
                return clients[i].infer({**observation(i), "instruction": texts[i]})
            except PolicyServerError as err:
                return str(err)

        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(call, range(3)))
        for client in clients:
            client.close()
    assert "the policy failed on this request (RuntimeError: the model exploded)" in results[0]
    np.testing.assert_array_equal(results[1], served.infer({**observation(1), "instruction": texts[1]}))
    assert "the policy produced non-finite actions for this observation" in results[2]


# --- authentication and limits ----------------------------------------------------------------------
def test_a_token_is_required_and_compared(served, observation, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with serve_in_thread(served, ServeConfig(port=0, token="s3cret")) as running:
        for token in (None, "wrong", "s3cre"):
            with pytest.raises(AuthenticationError, match="missing or wrong token: send the header 'Authorization"):
                PolicyClient(running.url, token=token)
        with PolicyClient(running.url, token="s3cret", timeout=TIMEOUT) as client:
            assert client.metadata["server"]["auth"] == "bearer"
            assert client.infer(observation(0)).shape == (4, 4)
            assert client.health()["requests"]["refused_auth"] == 3


def test_the_token_can_come_from_the_environment(served, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    with serve_in_thread(served, ServeConfig(port=0)) as running:
        with pytest.raises(AuthenticationError):
            PolicyClient(running.url)
        with PolicyClient(running.url, token="from-env") as client:
            assert client.metadata["server"]["auth"] == "bearer"


def test_connections_beyond_the_limit_are_refused(served):
    refused = pytest.raises(ServerUnavailable, match="HTTP 503: the server is at its limit of 1 connections")
    with serve_in_thread(served, ServeConfig(port=0, max_connections=1)) as running, PolicyClient(running.url), refused:
        PolicyClient(running.url)


# --- malformed requests -----------------------------------------------------------------------------
def _array_map(value: np.ndarray, **change: Any) -> dict[str, Any]:
    return {**unpackb(packb({"a": value}))["a"], **change}


def _without(obs: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obs.items() if k != key}


# (name, frame from a valid wire observation, what the error must say, the id the reply carries)
CASES = [
    (
        "missing camera",
        lambda o: raw_infer(_without(o, "rgb/corner"), 5),
        "lacks ['rgb/corner']; the policy reads: instruction (str",
        5,
    ),
    (
        "wrong shape",
        lambda o: raw_infer({**o, "state": np.zeros(5, np.float32)}, 5),
        "state: got float32[5], expected float32[4]",
        5,
    ),
    (
        "wrong dtype",
        lambda o: raw_infer({**o, "rgb/corner": o["rgb/corner"].astype(np.float32)}, 5),
        "rgb/corner: got float32[32, 32, 3], expected uint8[32, 32, 3]",
        5,
    ),
    (
        "list for an array",
        lambda o: raw_infer({**o, "goal": [0.0, 0.0, 0.0]}, 5),
        "goal: expected a numpy array float32[3], got list",
        5,
    ),
    (
        "truncated array",
        lambda o: raw_infer({**o, "state": _array_map(o["state"], data=b"\0" * 3)}, 5),
        "state: array data has 3 bytes; <f4[4] needs 16",
        5,
    ),
    (
        "unknown dtype",
        lambda o: raw_infer({**o, "state": _array_map(o["state"], dtype="<c16")}, 5),
        "array dtype '<c16' is not one of",
        5,
    ),
    ("NaN", lambda o: raw_infer({**o, "state": np.full(4, np.nan, np.float32)}, 5), "state has non-finite values", 5),
    (
        "singular intrinsics",
        lambda o: raw_infer({**o, "intrinsics/corner": np.zeros((3, 3), np.float32)}, 5),
        "intrinsics/corner must be a pinhole matrix",
        5,
    ),
    (
        "instruction not a str",
        lambda o: raw_infer({**o, "instruction": 3}, 5),
        "instruction must be a str of 1 to 256",
        5,
    ),
    (
        "extra observation key",
        lambda o: raw_infer({**o, "extrinsics/corner": np.eye(4, dtype=np.float32)}, 5),
        "has unknown keys ['extrinsics/corner']",
        5,
    ),
    (
        "too long a history",
        lambda o: packb({"type": "infer", "id": 5, "observations": [o] * 3}),
        "'observations' must be a list of 1 to 2 observation maps",
        5,
    ),
    (
        "observations not a list",
        lambda o: packb({"type": "infer", "id": 5, "observations": o}),
        "'observations' must be a list",
        5,
    ),
    ("bad seed", lambda o: raw_infer(o, 5, seed=-4), "'seed' must be an int in [0, 2**63)", 5),
    (
        "unknown message key",
        lambda o: packb({"type": "health", "id": 5, "verbose": True}),
        "unknown keys ['verbose']",
        5,
    ),
    (
        "unknown type",
        lambda o: packb({"type": "reset", "id": 5}),
        "unknown message type 'reset'; valid types: infer",
        5,
    ),
    ("id not an int", lambda o: packb({"type": "health", "id": "5"}), "'id' must be an int, got str", None),
    ("not a map", lambda o: packb([1, 2, 3]), "expected a msgpack map with a 'type' key; got a list", None),
    ("garbage bytes", lambda o: b"\xc1\xff\x00garbage", "frame is not a msgpack message", None),
    (
        "text frame",
        lambda o: '{"type": "health"}',
        "expected a binary frame holding a msgpack map; got a text frame",
        None,
    ),
    (
        "oversized payload",
        lambda o: raw_infer({**o, "instruction": "x" * 200_000}, 5),
        "exceeds the server's limit of",
        None,
    ),
]


@pytest.mark.parametrize("name, build, message, request_id", CASES, ids=[c[0] for c in CASES])
def test_each_malformed_request_gets_an_error_and_nothing_else_notices(
    name, build, message, request_id, server, bystander, observation
):
    obs = wire(observation(0), bystander.metadata["observation"])
    with connect(server.url, max_size=None) as ws:
        unpackb(ws.recv(timeout=TIMEOUT))  # metadata
        reply = ask(ws, build(obs))
        assert reply["type"] == "error" and message in reply["error"], reply
        assert reply["id"] == request_id
        ok = ask(ws, raw_infer(obs, 6))  # the same connection keeps working
        assert ok["type"] == "actions" and ok["id"] == 6
    assert bystander.infer(observation(1)).shape == (4, 4)


def test_frames_beyond_the_hard_limit_close_only_their_own_connection(server, bystander, observation):
    limit = bystander.metadata["server"]["max_payload_bytes"]
    with connect(server.url, max_size=None) as ws:
        unpackb(ws.recv(timeout=TIMEOUT))
        ws.send(b"\0" * (HARD_LIMIT_FACTOR * limit + 1))
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd.code == 1009  # "message too big"
    assert bystander.infer(observation(2)).shape == (4, 4)


# --- fuzzing -----------------------------------------------------------------------------------------
KEYS = st.sampled_from(
    [
        "type",
        "id",
        "observations",
        "seed",
        "infer",
        "health",
        "metadata",
        "state",
        "instruction",
        "rgb/corner",
        "__ndarray__",
        "dtype",
        "shape",
        "data",
    ]
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=24)
    | st.sampled_from(["infer", "health", "<f4", "|u1"])
)
STRUCTURES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=6), inner, max_size=5),
    max_leaves=24,
)


@pytest.fixture(scope="module")
def fuzz_connection(server):
    with connect(server.url, max_size=None) as ws:
        unpackb(ws.recv(timeout=TIMEOUT))
        yield ws


def check_reply(ws, frame: bytes) -> None:
    reply = ask(ws, frame)
    assert isinstance(reply, dict) and reply["type"] in ("error", "actions", "health", "metadata"), reply
    if reply["type"] == "error":
        assert isinstance(reply["error"], str) and reply["error"]
    if reply["type"] == "actions":
        actions = decode_array(reply["actions"])
        assert actions.shape == (4, 4) and np.isfinite(actions).all()


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(frame=st.binary(max_size=300))
def test_fuzz_random_bytes(fuzz_connection, frame):
    check_reply(fuzz_connection, frame)


@FUZZ
@given(message=STRUCTURES)
def test_fuzz_random_msgpack_structures(fuzz_connection, message):
    check_reply(fuzz_connection, packb(message) if not isinstance(message, bytes) else message)


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_valid_requests(fuzz_connection, bystander, observation, data):
    obs = wire(observation(0), bystander.metadata["observation"])
    message = unpackb(raw_infer(obs, 9))
    step = message["observations"][0]
    how = data.draw(st.sampled_from(["drop", "replace", "array field", "flip bytes", "truncate"]))
    if how == "drop":
        del step[data.draw(st.sampled_from(sorted(step)))]
    elif how == "replace":
        target = data.draw(st.sampled_from([message, step]))
        target[data.draw(st.sampled_from(sorted(target)) | st.text(max_size=8))] = data.draw(STRUCTURES)
    elif how == "array field":
        array = step[data.draw(st.sampled_from(sorted(k for k in step if k != "instruction")))]
        array[data.draw(st.sampled_from(["dtype", "shape", "data", "__ndarray__"]))] = data.draw(STRUCTURES)
    frame = bytearray(packb(message))
    if how == "flip bytes":
        for _ in range(data.draw(st.integers(1, 8))):
            frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    elif how == "truncate":
        frame = frame[: data.draw(st.integers(0, len(frame) - 1))]
    check_reply(fuzz_connection, bytes(frame))


def test_after_the_fuzzing_the_server_still_answers(fuzz_connection, bystander, served, observation):
    reply = ask(fuzz_connection, raw_infer(wire(observation(3), bystander.metadata["observation"]), 11))
    assert reply["type"] == "actions" and reply["id"] == 11
    np.testing.assert_array_equal(bystander.infer(observation(3)), served.infer(observation(3)))
    assert bystander.health()["requests"]["errors"] > 0


# --- the command --------------------------------------------------------------------------------------
def test_polyact_serve_runs_a_checkpoint_until_sigterm(checkpoint, served, observation):
    """From another working directory and without spec=: the checkpoint describes itself."""
    policy_dir, _ = checkpoint
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(TOKEN_ENV, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "polyact.cli", "serve", f"policy={policy_dir}", "port=0", "threads=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd="/",
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith(f"serving {policy_dir} at ws://127.0.0.1:"), first + proc.stderr.read()
        url = first.split(" at ", 1)[1].split(" ", 1)[0]
        with PolicyClient(url, timeout=TIMEOUT) as client:
            np.testing.assert_array_equal(client.infer(observation(0)), served.infer(observation(0)))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert "stopped; answered 1 inference requests" in out


def test_polyact_serve_refuses_a_missing_checkpoint(tmp_path, capsys):
    from polyact.cli import main

    assert main(["serve", f"policy={tmp_path}"]) == 2
    assert "is not a checkpoint directory" in capsys.readouterr().err

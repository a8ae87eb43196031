"""The robot-side client: standalone (numpy, msgpack, websockets; no torch, no polyact), and it rides out
a server restart."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest

import polyact.deploy.client as client_module
from polyact.deploy.client import PolicyClient, PolicyServerError, ServerUnavailable
from polyact.deploy.config import ServeConfig
from polyact.deploy.server import ServerThread, serve_in_thread

TIMEOUT = 120.0

# Runs in a fresh interpreter where importing torch or polyact fails, as on a robot computer without them.
STANDALONE = """
import importlib.abc, importlib.util, json, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "polyact"):
            raise ImportError(f"{name} is not installed on this robot")

sys.meta_path.insert(0, Refuse())
spec = importlib.util.spec_from_file_location("robot_client", sys.argv[1])
client = importlib.util.module_from_spec(spec)
spec.loader.exec_module(client)

import numpy as np

obs = dict(np.load(sys.argv[3]))
obs["instruction"] = sys.argv[4]
with client.PolicyClient(sys.argv[2]) as policy:
    actions = policy.infer(obs)
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in ("torch", "polyact"))
print(json.dumps({"actions": actions.tolist(), "dtype": str(actions.dtype), "loaded": loaded}))
"""


def test_the_client_file_works_alone_without_torch(served, observation, tmp_path):
    obs = observation(4)
    arrays = tmp_path / "obs.npz"
    np.savez(arrays, **{k: v for k, v in obs.items() if k != "instruction"})
    with serve_in_thread(served, ServeConfig(port=0)) as server:
        result = subprocess.run(
            [sys.executable, "-c", STANDALONE, client_module.__file__, server.url, str(arrays), obs["instruction"]],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["loaded"] == [] and reply["dtype"] == "float32"
    np.testing.assert_array_equal(np.asarray(reply["actions"], np.float32), served.infer(obs))


def test_the_client_says_when_no_server_listens():
    with socket.socket() as sock:  # bound, never listening: connections to it are refused
        sock.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(ServerUnavailable, match=r"cannot reach the policy server .* is `polyact serve` running"):
            PolicyClient(url, connect_timeout=TIMEOUT)


def test_the_client_reconnects_when_the_server_comes_back(served, observation):
    first = ServerThread(served, ServeConfig(port=0)).start()
    port = first.port
    client = PolicyClient(first.url, timeout=TIMEOUT, connect_timeout=TIMEOUT)
    expected = served.infer(observation(0))
    np.testing.assert_array_equal(client.infer(observation(0)), expected)

    first.stop()
    assert not client.connected
    for _ in range(2):  # the lost connection, then a refused reconnection
        with pytest.raises(ServerUnavailable):
            client.infer(observation(0))

    second = ServerThread(served, ServeConfig(port=port)).start()
    try:
        np.testing.assert_array_equal(client.infer(observation(0)), expected)
        assert client.connected
    finally:
        second.stop()

    other_rate = ServerThread(served, ServeConfig(port=port, control_hz=25.0)).start()
    try:
        with pytest.raises(PolicyServerError, match="now serves a different policy"):
            client.infer(observation(0))
    finally:
        other_rate.stop()
        client.close()

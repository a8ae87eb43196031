"""Where `polyact collect` and `polyact eval` run their episodes: a local process pool or a Ray cluster.

The settings both commands take, checked the same way in both, and `ray` imported only when a Ray run
asks for it (it is an optional extra; `polyact --help` never loads it).

Starting a local cluster is retried: on a saturated machine Ray can miss one of its own start-up
windows. The one that fails here is fixed in Ray 2.6x: the raylet gives its dashboard agent 15 s to
write its port file and aborts otherwise ("Timed out waiting for file .../dashboard_agent_listen_port_*"
or ".../metrics_agent_port_*" in raylet.out); neither RAY_raylet_start_wait_time_s nor
RAY_agent_register_timeout_ms changes it (tried with an agent slowed to 45 s). A later attempt meets
the window once the load eases or the imports are cached, so a failed start is cleaned up and
retried (`start_ray`). The windows Ray does let us widen are widened (`LOCAL_SYSTEM_CONFIG`).
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from polyact.errors import ConfigError, PolyactError, unknown_name

T = TypeVar("T")

RUNNERS = ("local", "ray")
RAY_INSTALL_HINT = "runner=ray needs Ray: pip install 'polyact[ray]'"
CONNECT_TIMEOUT_S = 10.0  # to open a connection to ray_address's head
RAY_START_ATTEMPTS = 3  # starts of a local cluster (or a test cluster's node) before giving up
LOCAL_SYSTEM_CONFIG = {
    # a worker process has this long to start and register (Ray's default: 60 s); a slow `import ray`
    # on a busy machine otherwise gets its workers killed and restarted, and actors never start
    "worker_register_timeout_seconds": 300,
}


def require_ray() -> Any:
    """The `ray` module, or ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_INSTALL_HINT) from None
    return ray


def connect_ray(address: str, num_cpus: int | None = None) -> Any:
    """Join the cluster at `address` (HOST:PORT, or "auto": the one `ray start` runs on this machine), or start
    a new local one (of `num_cpus`, None = every core) when it is empty, never a stale cluster Ray remembers;
    once per process. PolyactError in one line when neither works."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address:
        hint = "check that `ray start --head` runs there (`ray status` on that node) and that this machine reaches it"
        _check_listening(address, hint)
        try:
            ray.init(address=address)
        except Exception as err:  # Ray raises ConnectionError, TimeoutError or a bare Exception here
            raise PolyactError(
                f"cannot join the Ray cluster at ray_address={address} ({_first_line(err)}); {hint}"
            ) from None
        return ray
    start_ray(
        lambda: ray.init(
            address="local", num_cpus=num_cpus, include_dashboard=False, _system_config=LOCAL_SYSTEM_CONFIG
        ),
        "a local Ray cluster",
    )
    return ray


def start_ray(start: Callable[[], T], what: str, attempts: int | None = None) -> T:
    """`start()` (which starts Ray processes on this machine), tried `attempts` times (None:
    RAY_START_ATTEMPTS); the processes a failed try left behind are stopped before the next.
    PolyactError in one line, saying what to try, when every try failed."""
    import psutil  # a dependency of Ray's

    me = psutil.Process()
    attempts = attempts or RAY_START_ATTEMPTS
    for attempt in range(1, attempts + 1):
        before = {p.pid for p in me.children(recursive=True)}
        try:
            return start()
        except Exception as err:  # Ray's start-up timeouts are bare Exceptions
            reason = _first_line(err)
            for leftover in [p for p in me.children(recursive=True) if p.pid not in before]:
                with contextlib.suppress(psutil.NoSuchProcess):  # it ended on its own meanwhile
                    leftover.kill()
            if attempt < attempts:
                print(
                    f"{what} did not start (attempt {attempt} of {attempts}: {reason}); trying again", file=sys.stderr
                )
    raise PolyactError(
        f"{what} did not start in {attempts} attempts (last: {reason}); Ray gives its processes fixed windows "
        "to start (raylet.out under /tmp/ray/session_latest/logs names the one missed), which a saturated "
        "machine can miss: retry when it is less busy, or start Ray once yourself (`ray start --head`, again "
        "until it is up) and pass ray_address=auto"
    )


def _check_listening(address: str, hint: str) -> None:
    """PolyactError unless something accepts connections at HOST:PORT: `ray.init` would wait for minutes
    on an address where nothing listens. "auto" and ray:// addresses are left to Ray."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise PolyactError(f"nothing answers at ray_address={address} ({_first_line(err)}); {hint}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def check_runner(runner: str, ray_address: str, ray_retries: int) -> None:
    """Refuse unknown runners and Ray settings without runner=ray; for Ray, check it is installed now,
    before anything runs."""
    if runner not in RUNNERS:
        raise unknown_name("runner", runner, RUNNERS)
    if runner != "ray" and ray_address:
        raise ConfigError(f"ray_address={ray_address!r} applies to runner=ray; add runner=ray")
    if ray_retries < 0:
        raise ConfigError(f"ray_retries must be >= 0, got {ray_retries}")
    if runner == "ray":
        require_ray()

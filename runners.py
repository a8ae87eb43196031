"""Where `polyact collect` and `polyact eval` run their episodes: a local process pool or a Ray cluster.

The settings both commands take, checked the same way in both, and `ray` imported only when a Ray run
asks for it (it is an optional extra; `polyact --help` never loads it).
"""

from __future__ import annotations

from typing import Any

from polyact.errors import ConfigError, unknown_name

RUNNERS = ("local", "ray")
RAY_INSTALL_HINT = "runner=ray needs Ray: pip install 'polyact[ray]'"


def require_ray() -> Any:
    """The `ray` module, or ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_INSTALL_HINT) from None
    return ray


def connect_ray(address: str) -> Any:
    """Join the cluster at `address` (HOST:PORT, or "auto": the one `ray start` runs on this machine), or start
    a new local one when it is empty, never a stale cluster Ray remembers; once per process."""
    ray = require_ray()
    if not ray.is_initialized():
        if address:
            ray.init(address=address)
        else:
            ray.init(address="local", include_dashboard=False)
    return ray


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

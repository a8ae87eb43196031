"""Simulator evaluation: roll a policy out on a task set in parallel workers, report success rates.

`polyact eval` (config: `EvalConfig`, entry: `evaluate`) drives any `BatchPolicy`: the scripted
experts (`ExpertPolicy`), a checkpoint (`load_policy`) or a running `polyact serve` (policy=ws://HOST:PORT,
through deploy's client). See docs/eval.md. Names are imported on first
use, so `polyact.eval.config` loads no simulator.
"""

from __future__ import annotations

from polyact.lazy import lazy_exports

_EXPORTS = {
    "BatchPolicy": "policy",
    "EvalConfig": "config",
    "ExpertPolicy": "policy",
    "evaluate": "run",
    "summarise": "stats",
    "wilson_interval": "stats",
    "load_policy": "trained",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

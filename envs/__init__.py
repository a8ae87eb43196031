"""Environments behind one observation/action contract (contract.py): Meta-World v3 and more.

`make_env(task, EnvConfig(...))` builds any suite's task; `make_expert(env)` its scripted expert;
`resolve_tasks("MT10")` names the tasks of a task set.

Code map: catalog.py (every suite's names, no simulator), config.py (EnvConfig), registry.py (the
factories), base.py + rendering.py + spaces.py (what every environment shares), metaworld.py and
rlbench_like/ (the suites), multitask.py and vector.py (many tasks, many processes).

The factories are imported on first use (PEP 562), so `polyact.envs.config` loads no simulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyact.envs.catalog import resolve_tasks
from polyact.envs.config import EVAL_SEED_BASE, EnvConfig

if TYPE_CHECKING:
    from polyact.envs.registry import Expert, make_env, make_expert

from polyact.lazy import lazy_exports

_LAZY = {"Expert": "registry", "make_env": "registry", "make_expert": "registry"}
__all__ = ["EVAL_SEED_BASE", "EnvConfig", "Expert", "make_env", "make_expert", "resolve_tasks"]


__getattr__ = lazy_exports(__name__, _LAZY)

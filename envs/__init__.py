"""Environments behind one observation/action contract (contract.py): Meta-World v3 and more.

`make_env(task, EnvConfig(...))` builds any suite's task; `make_expert(env)` its scripted expert;
`resolve_tasks("MT10")` names the tasks of a task set.
"""

from polyact.envs.config import EVAL_SEED_BASE, EnvConfig
from polyact.envs.registry import Expert, make_env, make_expert, resolve_tasks

__all__ = [
    "EVAL_SEED_BASE",
    "EnvConfig",
    "Expert",
    "make_env",
    "make_expert",
    "resolve_tasks",
]

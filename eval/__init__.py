"""Simulator evaluation: roll a policy out on a task set in parallel workers, report success rates.

`polyact eval` (config: `EvalConfig`, entry: `evaluate`) drives any `BatchPolicy`: the scripted
experts (`ExpertPolicy`) or a checkpoint (`load_policy`). See docs/eval.md.
"""

from polyact.contract import PolicyRequirements, check_compatible
from polyact.eval.config import EvalConfig
from polyact.eval.policy import BatchPolicy, ExpertPolicy
from polyact.eval.run import evaluate
from polyact.eval.stats import summarise, wilson_interval
from polyact.eval.trained import load_policy

__all__ = [
    "BatchPolicy",
    "EvalConfig",
    "ExpertPolicy",
    "PolicyRequirements",
    "check_compatible",
    "evaluate",
    "load_policy",
    "summarise",
    "wilson_interval",
]

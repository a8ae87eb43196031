"""Package `__init__`s that import nothing heavy until a name is used (PEP 562).

`from polyact.policies import VLAPolicy` still works, but `import polyact.policies.config` no longer
loads torch on the way, and `polyact COMMAND --help` loads no simulator.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package` that imports `name` from `exports[name]` (a module path
    relative to the package) on first use."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__

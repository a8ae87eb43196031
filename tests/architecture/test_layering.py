"""The package layering of docs/architecture.md, checked on the source so that it cannot rot.

Every `import polyact.X` and `from polyact.X import ...` counts, also those inside functions: a lazy
import is still a dependency of the package that writes it. Rules are per package, with exceptions
per module (`ALLOWED`): evaluation may use the client side of deploy, never its server.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = {"contract", "atomic", "errors", "sysinfo", "runs", "faults", "lazy", "runners"}

# top-level modules built on the data layer (and on envs): what envs and policies may not reach through them
DATA_TOOLS = {"keyframe_data", "collect_trajectories", "dataview"}

# package -> the polyact packages and modules it must never import
FORBIDDEN = {
    **{base: {"envs", "data", "policies", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart"}
       for base in BASE},
    "policies": {"envs", "data", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart", *DATA_TOOLS},
    "data": {"envs", "policies", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart"},
    "envs": {"data", "policies", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart", *DATA_TOOLS},
    "train": {"envs", "eval", "deploy", "collect", "bench", "cli", "quickstart"},
    "eval": {"train", "deploy", "collect", "bench", "cli", "quickstart"},
    "collect": {"policies", "train", "eval", "deploy", "bench", "cli", "quickstart"},
    "collect_trajectories": {"policies", "train", "eval", "deploy", "bench", "cli", "quickstart"},
    "keyframe_data": {"policies", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart"},
    "dataview": {"envs", "policies", "train", "deploy", "collect", "bench", "cli", "quickstart"},
    "deploy": {"train", "eval", "collect", "bench", "cli", "quickstart"},
    "config": {"envs", "data", "policies", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart"},
    "cli": {"bench"},
    "quickstart": {"bench"},
}  # fmt: skip

# package -> modules of a forbidden package it may import all the same (and what is inside them)
ALLOWED = {
    # policy=ws://HOST:PORT: the numpy-only client and the slots that drive it; never the server or torch
    "eval": ("deploy.client", "deploy.served_slots"),
}


def package_of(path: Path) -> str:
    """`polyact.<first part>` of a source file: the subpackage or the top-level module's name."""
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def polyact_imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name after `polyact.`) of every polyact import in the file; `from polyact.a import b`
    gives `a.b` (b may be a module or a name in a)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "polyact" or node.module.startswith("polyact."):
                names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("polyact.")]
        found += [(node.lineno, name.removeprefix("polyact.")) for name in names]
    return found


def forbidden(package: str, target: str) -> bool:
    """Whether `package` may not import `target` (a dotted name after `polyact.`)."""
    allowed = ALLOWED.get(package, ())
    if any(target == module or target.startswith(f"{module}.") for module in allowed):
        return False
    return target.split(".")[0] in FORBIDDEN.get(package, set())


def library_files() -> list[Path]:
    skip = {"tests", ".venv", "venv", "build", "dist", ".git"}
    return sorted(p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts))


def violations() -> list[str]:
    out = []
    for path in library_files():
        package = package_of(path)
        for line, target in polyact_imports(path):
            if forbidden(package, target):
                out.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {target}")
    return out


def test_the_library_keeps_its_layers():
    assert violations() == []


def test_the_modules_allowed_across_a_layer_import_nothing_else_of_it():
    """An exception is one module, not a door: eval may use deploy's client side only if that side
    stays apart from the server (and from torch, which it would bring)."""
    for package, modules in ALLOWED.items():
        for module in modules:
            layer = module.split(".")[0]
            path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
            beyond = [t for _, t in polyact_imports(path) if t.split(".")[0] == layer and forbidden(package, t)]
            assert beyond == [], f"{module} imports {beyond}, which {package} may not"


def test_a_module_exception_admits_that_module_only():
    assert not forbidden("eval", "deploy.client.PolicyClient")
    assert not forbidden("eval", "deploy.served_slots")
    assert forbidden("eval", "deploy.server")
    assert forbidden("eval", "deploy.ServeConfig")  # the package's lazy exports reach the server
    assert forbidden("eval", "deploy.clients")  # a prefix of a name is not the module
    assert forbidden("collect", "deploy.client")  # an exception belongs to one package


def test_every_package_has_a_rule():
    """A new subpackage or top-level module must be placed in the layering, not slip past it."""
    placed = set(FORBIDDEN) | {"bench", "__init__"}
    unplaced = sorted({package_of(p) for p in library_files()} - placed)
    assert unplaced == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import polyact.envs.registry", ["envs.registry"]),
        ("from polyact.train.loop import train", ["train.loop.train"]),
        ("from polyact import eval", ["eval"]),
        ("def f():\n    from polyact.deploy import client, server", ["deploy.client", "deploy.server"]),
        ("from . import sibling\nimport numpy", []),
    ],
)
def test_the_checker_sees_every_kind_of_import(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert [target for _, target in polyact_imports(path)] == expected

"""The package layering of docs/architecture.md, checked on the source so that it cannot rot.

Every `import polyact.X` and `from polyact.X import ...` counts, also those inside functions: a lazy
import is still a dependency of the package that writes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = {"contract", "atomic", "errors", "sysinfo", "runs", "faults", "lazy", "runners"}

# package -> the polyact packages and modules it must never import
FORBIDDEN = {
    **{base: {"envs", "data", "policies", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart"}
       for base in BASE},
    "policies": {"envs", "data", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart"},
    "data": {"envs", "policies", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart"},
    "envs": {"data", "policies", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart"},
    "train": {"envs", "eval", "deploy", "collect", "bench", "cli", "quickstart"},
    "eval": {"train", "deploy", "collect", "bench", "cli", "quickstart"},
    "collect": {"policies", "train", "eval", "deploy", "bench", "cli", "quickstart"},
    "keyframe_data": {"policies", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart"},
    "dataview": {"envs", "policies", "train", "deploy", "collect", "bench", "cli", "quickstart"},
    "deploy": {"train", "eval", "collect", "bench", "cli", "quickstart"},
    "config": {"envs", "data", "policies", "train", "eval", "deploy", "collect", "bench", "cli", "quickstart"},
    "cli": {"bench"},
    "quickstart": {"bench"},
}  # fmt: skip


def package_of(path: Path) -> str:
    """`polyact.<first part>` of a source file: the subpackage or the top-level module's name."""
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def polyact_imports(path: Path) -> list[tuple[int, str]]:
    """(line, first part after `polyact.`) of every polyact import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "polyact":
                names = [f"polyact.{a.name}" for a in node.names]
            elif node.module.startswith("polyact."):
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("polyact.")]
        found += [(node.lineno, name.split(".")[1]) for name in names]
    return found


def library_files() -> list[Path]:
    skip = {"tests", ".venv", "venv", "build", "dist", ".git"}
    return sorted(p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts))


def violations() -> list[str]:
    out = []
    for path in library_files():
        package = package_of(path)
        for line, target in polyact_imports(path):
            if target in FORBIDDEN.get(package, set()):
                out.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {target}")
    return out


def test_the_library_keeps_its_layers():
    assert violations() == []


def test_every_package_has_a_rule():
    """A new subpackage or top-level module must be placed in the layering, not slip past it."""
    placed = set(FORBIDDEN) | {"bench", "__init__"}
    unplaced = sorted({package_of(p) for p in library_files()} - placed)
    assert unplaced == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import polyact.envs.registry", ["envs"]),
        ("from polyact.train.loop import train", ["train"]),
        ("from polyact import eval", ["eval"]),
        ("def f():\n    from polyact.deploy import client", ["deploy"]),
        ("from . import sibling\nimport numpy", []),
    ],
)
def test_the_checker_sees_every_kind_of_import(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert [target for _, target in polyact_imports(path)] == expected

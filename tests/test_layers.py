"""The layers of ARCHITECTURE.md, pinned: every run-time import in ``src/`` points up the stack.

A layer may import its own package and any layer listed above it, never one below; imports under
``if TYPE_CHECKING:`` are for annotations only and do not count. Importing one layer must not
pull in the whole package (``genlab``'s top-level names load lazily).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "genlab"

# From the bottom of the stack to the top; a package may import the packages of earlier rows.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "config", "io", "optim", "runs"),
    ("data",),
    ("nn", "objectives"),
    ("stats",),
    ("samplers",),
    ("models",),
    ("train", "explore"),
    ("metrics",),
    ("report",),
    ("settings", "api", "compare", "experiments"),
    ("cli", "__main__", "__init__"),
)
RANK = {package: rank for rank, row in enumerate(LAYERS) for package in row}


def package_of(module: str) -> str:
    """``genlab.models.vae`` -> ``models``; ``genlab`` (the root) -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def runtime_imports(path: Path) -> list[tuple[str, int]]:
    """``(module, line)`` of every ``genlab`` import outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    annotation_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in annotation_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "genlab":  # `from genlab import data` imports genlab.data
                found += [(f"genlab.{alias.name}", node.lineno) for alias in node.names]
            elif node.module.startswith("genlab."):
                found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("genlab.")]
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_package_has_a_layer():
    packages = {package_of(module_name(p)) for p in SRC.rglob("*.py")}
    assert packages - set(RANK) == set(), "add the new package to LAYERS (and ARCHITECTURE.md)"


def test_imports_point_up_the_layers():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        source = package_of(module_name(path))
        for module, line in runtime_imports(path):
            target = package_of(module)
            if target != source and RANK[target] > RANK[source]:
                wrong.append(f"{path.relative_to(SRC.parent)}:{line} {source} -> {target}")
    assert wrong == [], "imports that point down the layers:\n" + "\n".join(wrong)


def test_the_checker_sees_a_wrong_import(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "from genlab.train import fit\n"
        "from genlab import data\n"
        "if TYPE_CHECKING:\n"
        "    from genlab.report import figures\n"
        "def f():\n"
        "    import genlab.metrics.frechet\n"
    )
    assert runtime_imports(path) == [
        ("genlab.train", 2),
        ("genlab.data", 3),
        ("genlab.metrics.frechet", 7),
    ]


@pytest.mark.parametrize(
    ("layer", "absent"),
    [
        ("genlab.stats", ("genlab.models", "genlab.train", "genlab.report", "genlab.api")),
        ("genlab.data", ("genlab.nn", "genlab.models", "genlab.train")),
        ("genlab.samplers", ("genlab.models", "genlab.train")),
        ("genlab.models", ("genlab.train", "genlab.metrics", "genlab.report")),
    ],
)
def test_importing_a_layer_does_not_import_the_layers_above(layer, absent):
    code = (
        f"import sys, {layer}\n"
        f"print(sorted(m for m in {absent!r} if m in sys.modules))\n"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "False"], out

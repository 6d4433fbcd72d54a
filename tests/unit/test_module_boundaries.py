"""No module of ours reaches into another's private names (``from x import _y``, ``x._y``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [
    ROOT / "operator" / "inference_thresholds",
    ROOT / "node-agent" / "inference_thresholds_agent",
    ROOT / "devtools" / "inference_thresholds_dev",
]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _ours(module: str | None, level: int) -> bool:
    return level > 0 or (module or "").split(".")[0].startswith("inference_thresholds")


def private_uses(source: str) -> list[str]:
    """'line: what' for each private name this module takes from another of ours."""
    tree = ast.parse(source)
    modules: set[str] = set()  # local names bound to our modules (or names in them)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if _ours(a.name, 0)}
        elif isinstance(node, ast.ImportFrom) and _ours(node.module, node.level):
            for alias in node.names:
                if _private(alias.name):
                    where = "." * node.level + (node.module or "")
                    found.append(f"{node.lineno}: from {where} import {alias.name}")
                else:
                    modules.add(alias.asname or alias.name)  # may be a module: checked below
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and _private(node.attr)
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_check_sees_both_forms() -> None:
    source = "from .reconcile import _document\nfrom . import plan\nplan._summary(1)\n"
    assert private_uses(source) == ["1: from .reconcile import _document", "3: plan._summary"]
    assert private_uses("from . import x\nclass A:\n    def f(self): return self._y\n") == []
    assert private_uses("import os\nos._exit(0)\n") == []  # not ours


def test_no_module_imports_another_modules_private_name() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{use}"
        for package in PACKAGES
        for path in sorted(package.rglob("*.py"))
        for use in private_uses(path.read_text(encoding="utf-8"))
    ]
    assert offences == []


# Lower layers never reach up: the pod-side client, the engine and the API types load in
# slim images, and the reconcile core stays testable without kopf.
LOWER_LAYERS = ("api", "engine", "client", "adaptation", "text.py")
FORBIDDEN_ABOVE = ("inference_thresholds.controller", "inference_thresholds.cli", "kopf")


def _imported_modules(path: Path) -> set[str]:
    package = ".".join(path.relative_to(ROOT / "operator").with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = node.module or ""
            names.add(f"{base}.{module}".rstrip(".") if node.level else module)
    return names


def test_lower_layers_import_nothing_above_them() -> None:
    package = ROOT / "operator" / "inference_thresholds"
    offences = []
    for layer in LOWER_LAYERS:
        paths = (
            [package / layer] if layer.endswith(".py") else sorted((package / layer).rglob("*.py"))
        )
        for path in paths:
            for name in _imported_modules(path):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_ABOVE):
                    offences.append(f"{path.relative_to(ROOT)}: {name}")
    assert offences == []

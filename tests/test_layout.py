"""The package arrows of the README's layout hold: no stage imports one above it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> the project packages it may import (the README's "Layout")
ALLOWED = {
    "common": set(),
    "simulate": {"common"},
    "retrieval": {"common"},
    "embedder": {"common", "retrieval"},
    "intent_labels": {"common", "retrieval"},
    "daian": {"common", "retrieval", "intent_labels"},
    "report": {"common", "intent_labels", "daian"},
}


def imported_packages(package: str) -> dict[str, str]:
    """Project package -> first file:line of `package` that imports it (module-level or lazy)."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in ALLOWED and top != package:
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_layout(package):
    found = imported_packages(package)
    wrong = {k: v for k, v in found.items() if k not in ALLOWED[package]}
    assert not wrong, f"{package} imports {wrong}; allowed: {sorted(ALLOWED[package])}"


def test_every_package_is_listed():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(ALLOWED)

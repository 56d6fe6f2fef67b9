"""`wyoming_core` is the bottom layer: it imports none of the packages built on it."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.services import ROOT

ABOVE = ("discovery", "satellite", "stack", "wyoming_stt", "wyoming_tts", "wyoming_llm", "tests", "bench")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_wyoming_core_imports_nothing_above_it() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & set(ABOVE))
        for path in sorted((ROOT / "wyoming_core").rglob("*.py"))
    }
    assert not {path: names for path, names in offenders.items() if names}

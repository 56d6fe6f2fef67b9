"""The seam between the satellite core and its backends stays narrow (issue 15, item 3).

A backend talks to the core only through `satellite.backend.Core` (state, named state changes,
feedback sounds, the end of a turn, the player), and `backend.py` does not import the core, so
the two do not import each other.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import satellite
from satellite.backend import Core
from satellite.core import Satellite

SATELLITE = Path(satellite.__file__).parent
BACKENDS = ("ha.py", "turn.py", "answer.py")


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _core_members_used(path: Path) -> set[str]:
    """Every `X` in `self.core.X` (and `core.X`) in the file."""
    used: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
        if name == "core":
            used.add(node.attr)
    return used


def test_backend_module_does_not_import_the_core() -> None:
    imported = _imported_modules(SATELLITE / "backend.py")
    assert not {".core", "satellite.core"} & imported, imported


def test_backends_use_only_the_core_protocol() -> None:
    allowed = {name for name in vars(Core) if not name.startswith("_")}
    assert {"state", "player", "play_sound", "thinking", "speaking", "idle", "end_turn"} <= allowed
    for name in BACKENDS:
        used = _core_members_used(SATELLITE / name)
        assert used <= allowed, f"{name} reaches past the seam: {sorted(used - allowed)}"
    for name in BACKENDS:
        text = (SATELLITE / name).read_text()
        assert ".sm." not in text and "sat." not in text, name


def test_the_core_is_what_the_protocol_says() -> None:
    for name in ("play_sound", "thinking", "speaking", "idle", "end_turn"):
        assert callable(getattr(Satellite, name)), name
    assert isinstance(inspect.getattr_static(Satellite, "state"), property)
    assert inspect.iscoroutinefunction(Satellite.end_turn)

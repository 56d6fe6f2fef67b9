"""Every route of every service is a real Wyoming event type: a typo in a route table would
silently never match (the event would be answered as unknown)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any

import pytest
import wyoming

from satellite.ha import HaConnection
from wyoming_core.handler import ConnectionHandler
from wyoming_llm.handler import LlmHandler
from wyoming_stt.handler import SttHandler
from wyoming_tts.handler import TtsHandler


def wyoming_event_types() -> set[str]:
    """The type strings the `wyoming` package defines (its `_..._TYPE` constants)."""
    types: set[str] = set()
    for module_info in pkgutil.iter_modules(wyoming.__path__):
        module = importlib.import_module(f"wyoming.{module_info.name}")
        for name, value in vars(module).items():
            if re.fullmatch(r"_[A-Z_]+_TYPE", name) and isinstance(value, str):
                types.add(value)
    return types


class _Anything:
    """Stands in for a handler's collaborators: every attribute is a callable."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *_args, **_kwargs: None


@pytest.mark.parametrize("handler", [SttHandler, TtsHandler, LlmHandler, HaConnection])
def test_route_keys_are_wyoming_event_types(handler: type[ConnectionHandler]) -> None:
    known = wyoming_event_types()
    assert {"transcript", "synthesize", "run-satellite", "audio-chunk"} <= known
    # Only the route table is wanted: no connection, no settings.
    instance = object.__new__(handler)
    instance.backend = _Anything()  # type: ignore[attr-defined]
    routes = instance.routes()
    assert routes, handler
    unknown = sorted(set(routes) - known)
    assert not unknown, f"{handler.__name__} routes events wyoming does not define: {unknown}"

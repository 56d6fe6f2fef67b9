"""Whether a service's models and voices are ready, said through `describe`.

Wyoming's `info` has no field for "still loading", and `installed` means something else (the
model is on disk; Home Assistant builds an STT entity's languages from the installed models once,
when it sets the service up, so a model shown as not installed while it loads would stay missing
there). So a model or voice that is being loaded ends its description with ` [loading]`, and one
that could not be loaded with ` [not loaded]`. A service is ready once it loads nothing any more;
this is also right for other Wyoming services, which load their models before they listen.

    info = await describe(uri)
    if is_ready(info): ...              # nothing is being loaded
    not_loaded(info)                    # what could not be loaded, e.g. ["en_US-broken-low"]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wyoming.info import Info

LOADING = "[loading]"
NOT_LOADED = "[not loaded]"


def described(description: str, *, loading: bool = False, failed: bool = False) -> str:
    """`description`, with the state at its end when the artifact is not ready."""
    tag = NOT_LOADED if failed else LOADING if loading else ""
    return f"{description} {tag}".strip() if tag else description


def _artifacts(info: Info) -> Iterator[Any]:
    """Every program and every model or voice in `info`."""
    for programs, field in (
        (info.asr, "models"),
        (info.tts, "voices"),
        (info.handle, "models"),
        (info.intent, "models"),
        (info.wake, "models"),
    ):
        for program in programs:
            yield program
            yield from getattr(program, field, None) or []
    if info.satellite is not None:
        yield info.satellite


def _tagged(info: Info, tag: str) -> list[str]:
    return [a.name for a in _artifacts(info) if (a.description or "").endswith(tag)]


def loading(info: Info) -> list[str]:
    """Names of the models and voices still being loaded."""
    return _tagged(info, LOADING)


def not_loaded(info: Info) -> list[str]:
    """Names of the models and voices that could not be loaded."""
    return _tagged(info, NOT_LOADED)


def is_ready(info: Info) -> bool:
    """The service offers something and is loading nothing. What could not be loaded does not
    hold it back (a TTS with one broken voice speaks with the others): see `not_loaded`."""
    offers = any(True for _ in _artifacts(info))
    return offers and not loading(info)

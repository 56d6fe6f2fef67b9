"""What a Wyoming service offers, from its `info` answer, in a form that sorts and prints well."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wyoming.info import Info

# The order the table and `ServicePool` use; "satellite" last, as it uses the others.
KINDS = ("asr", "tts", "handle", "intent", "wake", "satellite")
KIND_ALIASES = {"stt": "asr", "llm": "handle", "conversation": "handle"}


def normalise_kind(kind: str) -> str:
    kind = kind.strip().lower()
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ValueError(f"Unknown service kind {kind!r}; use one of {', '.join(KINDS)} (or stt, llm)")
    return kind


@dataclass(frozen=True)
class Offer:
    """One program of a service: e.g. kind "asr", program "faster-whisper", items ("base",)."""

    kind: str
    program: str
    items: tuple[str, ...] = ()  # models (asr, handle, wake) or voices (tts)
    languages: tuple[str, ...] = ()
    streaming: bool = False
    installed: bool = True


def _languages(artifacts: list[Any]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for artifact in artifacts:
        for lang in getattr(artifact, "languages", None) or []:
            seen.setdefault(str(lang), None)
    return tuple(seen)


def _program_offer(kind: str, program: Any, items: list[Any], streaming: bool) -> Offer:
    return Offer(
        kind,
        program.name,
        tuple(item.name for item in items),
        _languages(items),
        streaming,
        # A program is only usable as advertised if what it offers is installed too.
        bool(program.installed) and all(item.installed for item in items),
    )


def offers(info: Info) -> tuple[Offer, ...]:
    """Every program the service describes, in `KINDS` order."""
    found = [_program_offer("asr", p, p.models, bool(p.supports_transcript_streaming)) for p in info.asr]
    found += [_program_offer("tts", p, p.voices, bool(p.supports_synthesize_streaming)) for p in info.tts]
    found += [_program_offer("handle", p, p.models, bool(p.supports_handled_streaming)) for p in info.handle]
    found += [_program_offer("intent", p, p.models, False) for p in info.intent]
    found += [_program_offer("wake", p, p.models, False) for p in info.wake]
    if info.satellite is not None:
        sat = info.satellite
        items = tuple(sat.active_wake_words or ())
        found.append(Offer("satellite", sat.name, items, (), False, sat.installed))
    return tuple(found)


def short_list(values: tuple[str, ...], limit: int = 6) -> str:
    """`en, de, fr, … (99)` rather than a line of a hundred languages."""
    if not values:
        return "-"
    if len(values) <= limit:
        return ", ".join(values)
    return f"{', '.join(values[:limit])}, … ({len(values)})"

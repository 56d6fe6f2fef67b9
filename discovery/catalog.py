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


def offers(info: Info) -> tuple[Offer, ...]:
    """Every program the service describes, in `KINDS` order."""
    found: list[Offer] = []
    for asr_prog in info.asr:
        found.append(
            Offer(
                "asr",
                asr_prog.name,
                tuple(m.name for m in asr_prog.models),
                _languages(asr_prog.models),
                bool(asr_prog.supports_transcript_streaming),
                asr_prog.installed and all(m.installed for m in asr_prog.models),
            )
        )
    for tts_prog in info.tts:
        found.append(
            Offer(
                "tts",
                tts_prog.name,
                tuple(v.name for v in tts_prog.voices),
                _languages(tts_prog.voices),
                bool(tts_prog.supports_synthesize_streaming),
                tts_prog.installed and all(v.installed for v in tts_prog.voices),
            )
        )
    for handle_prog in info.handle:
        found.append(
            Offer(
                "handle",
                handle_prog.name,
                tuple(m.name for m in handle_prog.models),
                _languages(handle_prog.models),
                bool(handle_prog.supports_handled_streaming),
                handle_prog.installed,
            )
        )
    for intent_prog in info.intent:
        found.append(
            Offer(
                "intent",
                intent_prog.name,
                tuple(m.name for m in intent_prog.models),
                _languages(intent_prog.models),
                False,
                intent_prog.installed,
            )
        )
    for wake_prog in info.wake:
        found.append(
            Offer(
                "wake",
                wake_prog.name,
                tuple(m.name for m in wake_prog.models),
                _languages(wake_prog.models),
                False,
                wake_prog.installed,
            )
        )
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

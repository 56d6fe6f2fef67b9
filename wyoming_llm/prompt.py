"""The system message: instructions for speech, plus the current date, time and language."""

from __future__ import annotations

from datetime import datetime
from typing import Any

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant in the user's home. Your answers are read aloud by a "
    "text-to-speech voice, so answer in one to three short, plain spoken sentences. Never use "
    "markdown, lists, tables, code, emoji or web links. Write numbers, times and units the way a "
    "person would say them. If you do not know something, say so briefly."
)

_LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "it": "Italian",
    "pt": "Portuguese",
    "es": "Spanish",
    "nl": "Dutch",
    "pl": "Polish",
    "sv": "Swedish",
    "da": "Danish",
    "nb": "Norwegian",
    "no": "Norwegian",
    "fi": "Finnish",
    "cs": "Czech",
    "ru": "Russian",
    "uk": "Ukrainian",
    "tr": "Turkish",
    "hi": "Hindi",
    "th": "Thai",
    "ja": "Japanese",
    "zh": "Chinese",
    "ko": "Korean",
}


def language_name(code: str) -> str:
    base = code.replace("_", "-").split("-")[0].lower()
    return _LANGUAGE_NAMES.get(base, code)


def system_message(prompt: str, now: datetime, language: str | None) -> dict[str, Any]:
    """Built per request: the model has no clock, and the user's language can change per turn."""
    moment = now.strftime("%A, %d %B %Y, %H:%M")
    zone = now.strftime("%Z") or now.strftime("%z")
    lines = [prompt, "", f"The current date and time is {moment} ({zone})."]
    if language:
        lines.append(f"The user speaks {language_name(language)}; answer in {language_name(language)}.")
    return {"role": "system", "content": "\n".join(lines)}

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


# What the model is told about the home, by the state of the connection. Short on purpose: the
# tools describe themselves, and entity states come from GetLiveContext only when needed.
HOME_LINES = {
    "tools": (
        "You can control and check the user's home with the tools. To know what is on or where "
        "a device is, call GetLiveContext. Only say an action was done if a tool result says it "
        "succeeded; if it failed, say so."
    ),
    "none": (
        "You cannot control or check any device in the home. If asked to, say that you are not "
        "connected to Home Assistant, and never pretend that something was done."
    ),
    "disconnected": (
        "Home Assistant cannot be reached right now: you cannot control or check devices. If "
        "asked to, say so, and never pretend that something was done."
    ),
    "no-tools": (
        "You cannot control devices yourself. If asked to, say that you can't do that, and never "
        "pretend that something was done."
    ),
}


def system_message(prompt: str, now: datetime, language: str | None, home: str = "none") -> dict[str, Any]:
    """Built per request: the model has no clock, the user's language can change per turn, and
    the home connection can come and go."""
    moment = now.strftime("%A, %d %B %Y, %H:%M")
    zone = now.strftime("%Z") or now.strftime("%z")
    lines = [prompt, "", f"The current date and time is {moment} ({zone}).", HOME_LINES[home]]
    if language:
        lines.append(f"The user speaks {language_name(language)}; answer in {language_name(language)}.")
    return {"role": "system", "content": "\n".join(lines)}

"""What a client names in a request, made safe before it is used: conversation keys of bounded
size, and language codes that look like language codes (anything else is the service's default)."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any

from wyoming_core.logs import clip

_LOGGER = logging.getLogger(__name__)

# Context keys that name a conversation, most specific first.
CONVERSATION_KEYS = ("conversation_id", "satellite_id", "device_id")

# Longer ids are replaced by their SHA-256: the same id still finds the same conversation, and
# memory, logs and the history file hold 71 characters instead of whatever a client sent.
MAX_ID_CHARS = 128
# A whole key: the context key's name, a colon and the id.
MAX_KEY_CHARS = MAX_ID_CHARS + 32

# BCP-47-ish: "en", "de-DE", "pt_BR", "zh-Hans-CN", "sr-Latn" (at most 35 characters, as BCP 47's
# longest useful tag). What matches goes to the prompt and Home Assistant's sentences as it is.
MAX_LANGUAGE_CHARS = 35
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}")

# How many distinct rejected languages are remembered, so each is logged once.
_REMEMBERED_REJECTIONS = 256


def bounded_id(value: str, limit: int = MAX_ID_CHARS) -> str:
    if len(value) <= limit:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def conversation_key(context: Mapping[str, Any]) -> str | None:
    """`NAME:ID` of the first id the context has, its id cut down to a bounded size."""
    for name in CONVERSATION_KEYS:
        value = context.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return f"{name}:{bounded_id(str(value))}"
    return None


def is_language_code(value: str) -> bool:
    return len(value) <= MAX_LANGUAGE_CHARS and _LANGUAGE.fullmatch(value) is not None


class LanguageCheck:
    """Passes language codes; anything else becomes None (the service's default language),
    logged once per distinct value (escaped and cut)."""

    def __init__(self, default: str) -> None:
        self.default = default
        # Digests of rejected values already logged, oldest first; bounded.
        self._logged: dict[bytes, None] = {}

    def __call__(self, language: str | None) -> str | None:
        if language is None:
            return None
        code = language.strip()
        if is_language_code(code):
            return code
        digest = hashlib.sha256(language.encode("utf-8", "surrogatepass")).digest()
        if digest not in self._logged:
            if len(self._logged) >= _REMEMBERED_REJECTIONS:
                del self._logged[next(iter(self._logged))]
            self._logged[digest] = None
            _LOGGER.warning(
                "A client asked for language %s, which is not a language code; answering in the "
                "default language (%s)",
                clip(language),
                self.default,
            )
        return None

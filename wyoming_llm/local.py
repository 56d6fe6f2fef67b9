"""What the service answers by itself: memory resets always, the time and date when Ollama cannot."""

from __future__ import annotations

import re
from datetime import datetime

RESET_REPLY = "Okay, let's start over. I've forgotten our conversation."
EMPTY_REPLY = "Sorry, I didn't catch that. Could you say it again?"
NO_ANSWER_REPLY = "Sorry, I don't have an answer to that."

_RESET = re.compile(
    r"^(?:ok(?:ay)? |hey |please )*"
    r"(?:clear (?:the |my |our |your )?(?:conversation |chat )?(?:history|memory)"
    r"|start (?:over|again|afresh)"
    r"|(?:start |begin )?(?:a )?new (?:conversation|chat)"
    r"|forget (?:everything|our conversation|the conversation))"
    r"(?: please| now)?$"
)
_TIME = re.compile(
    r"^(?:hey )?(?:what(?:s| is) the time|what time is it|(?:can you )?tell me the time)"
    r"(?: now| right now| please)?$"
)
_DATE = re.compile(
    r"^(?:hey )?(?:what(?:s| is) (?:the |todays )?date(?: today)?|what day is (?:it|today)"
    r"|what(?:s| is) today|which day is (?:it|today)|(?:can you )?tell me the date)"
    r"(?: today| please)?$"
)


def normalize(text: str) -> str:
    """Lower case, no punctuation or apostrophes ("What's the time?" -> "whats the time")."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def is_reset(text: str) -> bool:
    return bool(_RESET.match(normalize(text)))


def clock_answer(text: str, now: datetime) -> str | None:
    """The time or the date, in English, if that is what was asked."""
    asked = normalize(text)
    if _TIME.match(asked):
        hour = now.hour % 12 or 12
        return f"It's {hour}:{now.minute:02d} {'AM' if now.hour < 12 else 'PM'}."
    if _DATE.match(asked):
        return f"Today is {now.strftime('%A')}, {now.strftime('%B')} {now.day}, {now.year}."
    return None

"""The satellite's states and the one place they change, logged in plain words."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

_LOGGER = logging.getLogger("satellite.state")


class State(enum.Enum):
    WAITING = "waiting for the wake word"
    LISTENING = "listening to the request"
    FOLLOW_UP = "listening for a follow-up without the wake word"
    THINKING = "waiting for the answer"
    SPEAKING = "speaking the answer"
    PAUSED = "paused (no Home Assistant asking for audio)"


# Which changes make sense; anything else is a bug worth a warning, not a crash.
_ALLOWED: dict[State, set[State]] = {
    State.WAITING: {State.LISTENING, State.PAUSED, State.SPEAKING},
    State.LISTENING: {State.THINKING, State.SPEAKING, State.WAITING, State.PAUSED, State.LISTENING},
    State.FOLLOW_UP: {State.LISTENING, State.WAITING, State.PAUSED},
    State.THINKING: {State.SPEAKING, State.WAITING, State.FOLLOW_UP, State.LISTENING, State.PAUSED},
    State.SPEAKING: {State.WAITING, State.FOLLOW_UP, State.LISTENING, State.PAUSED, State.THINKING},
    State.PAUSED: {State.WAITING, State.SPEAKING},
}


class StateMachine:
    def __init__(self, initial: State = State.WAITING) -> None:
        self.state = initial
        self.since = time.monotonic()
        self.why = "start-up"  # the last change's reason (the status page shows it)
        self._listeners: list[Callable[[State, State], None]] = []
        _LOGGER.info("State: %s", initial.value)

    def on_change(self, callback: Callable[[State, State], None]) -> None:
        self._listeners.append(callback)

    def is_(self, *states: State) -> bool:
        return self.state in states

    def go(self, new: State, why: str = "") -> None:
        old = self.state
        if new is old and new is not State.LISTENING:
            return
        if new not in _ALLOWED[old]:
            _LOGGER.warning("Unexpected state change: %s -> %s", old.value, new.value)
        self.state = new
        self.since = time.monotonic()
        self.why = why
        _LOGGER.info("State: %s -> %s%s", old.value, new.value, f" ({why})" if why else "")
        for callback in self._listeners:
            callback(old, new)

"""What a turn heard and answered, told to whoever watches (the status page, satellite/web.py).

A plain observer list on the satellite core: `publish` returns at once when nobody watches, so
a satellite without a page open does no work for it. Watchers must not block (they queue).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """`kind`: transcript, sentence, timing, ...; `data`: JSON-able values."""

    kind: str
    data: dict[str, object] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


Watcher = Callable[[Event], None]


class Events:
    def __init__(self) -> None:
        self._watchers: list[Watcher] = []

    @property
    def watched(self) -> bool:
        return bool(self._watchers)

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Add `watcher`; returns the function that removes it."""
        self._watchers.append(watcher)

        def unwatch() -> None:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

        return unwatch

    def publish(self, kind: str, **data: object) -> None:
        if not self._watchers:
            return
        event = Event(kind, data)
        for watcher in list(self._watchers):
            try:
                watcher(event)
            except Exception:  # a broken page must not break a turn
                _LOGGER.exception("A watcher of satellite events failed")

"""`--turn-report FILE`: each turn's result as one JSON line, for programs rather than people.

    {"turn": 1, "outcome": "answered", "transcript": "what day is it", "reply": "It is Monday.",
     "error": null, "at": 1764571234.5}

`outcome` is `answered` (the transcript may be empty: nothing was heard), `failed` (`error` says
what failed), `no-speech` (nobody spoke after the wake word) or `interrupted` (a barge-in ended
it). `transcript`/`reply` are null when the turn never got that far. What people said is
private, so the file is created readable by its owner only (0600); lines are appended.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnResult:
    turn: int
    outcome: str
    transcript: str | None = None
    reply: str | None = None
    error: str | None = None


class TurnReport:
    """Appends a `TurnResult` per turn to a file (nowhere without a path)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def _append(self, line: str) -> None:
        assert self.path is not None
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(line)

    async def add(self, result: TurnResult) -> None:
        if self.path is None:
            return
        line = json.dumps({**asdict(result), "at": time.time()}, ensure_ascii=False) + "\n"
        try:
            await asyncio.to_thread(self._append, line)  # a slow disk must not stall the mic loop
        except OSError as err:
            _LOGGER.error("Cannot write the turn report %s: %s", self.path, err)


def read_turns(path: Path) -> list[TurnResult]:
    """The turns a report holds, oldest first (an unfinished last line is left out)."""
    if not path.exists():
        return []
    turns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        known = {f.name for f in fields(TurnResult)}
        turns.append(TurnResult(**{k: v for k, v in data.items() if k in known}))
    return turns

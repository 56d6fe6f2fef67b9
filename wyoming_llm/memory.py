"""Conversation memory: the last turns of each conversation, kept in SQLite so a restart loses nothing.

One SQLite connection per store, used from a worker thread under a lock, so the
event loop never blocks on the disk. Every write is one transaction: a crash or a
full disk leaves the previous state intact. If the data dir cannot be written
(read-only, disk full) the store says so once in the log and carries on in memory.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wyoming_core.logs import clip

_LOGGER = logging.getLogger(__name__)

# Conversations held in memory at once; the least recently used beyond it are dropped from
# memory (their turns stay on disk, so only a memory-only store forgets them early).
MAX_LIVE_CONVERSATIONS = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT NOT NULL,
    user_text TEXT NOT NULL,
    assistant_text TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (conversation, id);
"""


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str
    at: float  # wall-clock seconds: it has to mean the same after a restart


class _Sqlite:
    """The on-disk part; every method runs in a worker thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            with self._lock:
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
        except sqlite3.Error:
            self._db.close()
            raise

    def load(self, conversation: str, limit: int) -> list[Turn]:
        with self._lock:
            rows = self._db.execute(
                "SELECT user_text, assistant_text, at FROM turns WHERE conversation = ? "
                "ORDER BY id DESC LIMIT ?",
                (conversation, limit),
            ).fetchall()
        return [Turn(u, a, at) for u, a, at in reversed(rows)]

    def _transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back on some errors (a full disk, for one).
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def add(self, conversation: str, turn: Turn, keep: int) -> None:
        self._transaction(
            [
                (
                    "INSERT INTO turns (conversation, user_text, assistant_text, at) VALUES (?, ?, ?, ?)",
                    (conversation, turn.user, turn.assistant, turn.at),
                ),
                (
                    "DELETE FROM turns WHERE conversation = ? AND id NOT IN "
                    "(SELECT id FROM turns WHERE conversation = ? ORDER BY id DESC LIMIT ?)",
                    (conversation, conversation, keep),
                ),
            ]
        )

    def clear(self, conversation: str) -> None:
        self._transaction([("DELETE FROM turns WHERE conversation = ?", (conversation,))])

    def expire(self, before: float) -> None:
        """Drop conversations whose last turn is older than `before`."""
        self._transaction(
            [
                (
                    "DELETE FROM turns WHERE conversation IN "
                    "(SELECT conversation FROM turns GROUP BY conversation HAVING MAX(at) < ?)",
                    (before,),
                )
            ]
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class History:
    """Per-conversation memory, trimmed to `max_turns` and forgotten after `idle_seconds`."""

    def __init__(
        self,
        path: Path | None,
        max_turns: int,
        idle_seconds: float,
        clock: Callable[[], float] = time.time,
        max_live: int = MAX_LIVE_CONVERSATIONS,
    ) -> None:
        self.path = path
        self.max_turns = max_turns
        self.idle_seconds = idle_seconds
        self.max_live = max_live
        self._clock = clock
        self._disk: _Sqlite | None = None
        # Conversations seen by this process, least recently used first; the only copy if the
        # disk fails.
        self._ram: dict[str, list[Turn]] = {}
        self._expired_at = 0.0

    @property
    def persistent(self) -> bool:
        return self._disk is not None

    async def open(self) -> None:
        if self.path is None:
            return
        try:
            self._disk = await asyncio.to_thread(_Sqlite, self.path)
            self._expired_at = self._clock()
            await asyncio.to_thread(self._disk.expire, self._expired_at - self.idle_seconds)
            _LOGGER.info("Conversation history is kept in %s", self.path)
        except (sqlite3.Error, OSError) as err:
            self._fail("open", err)

    async def close(self) -> None:
        if self._disk is not None:
            disk, self._disk = self._disk, None
            await asyncio.to_thread(disk.close)

    def _fail(self, action: str, err: Exception) -> None:
        _LOGGER.error(
            "Cannot %s the conversation history in %s (%s); keeping it in memory only, "
            "so it will be lost when the service restarts",
            action,
            self.path,
            err,
        )
        disk, self._disk = self._disk, None
        if disk is not None:
            try:
                disk.close()
            except sqlite3.Error:
                pass

    def _fresh(self, turns: list[Turn], now: float) -> list[Turn]:
        if turns and turns[-1].at < now - self.idle_seconds:
            return []
        return turns[-self.max_turns :] if self.max_turns else []

    async def turns(self, conversation: str) -> list[Turn]:
        """The remembered turns, oldest first (empty if the conversation went idle)."""
        now = self._clock()
        turns = self._ram.get(conversation)
        if turns is None and self._disk is not None and self.max_turns:
            try:
                turns = await asyncio.to_thread(self._disk.load, conversation, self.max_turns)
            except sqlite3.Error as err:
                self._fail("read", err)
        fresh = self._fresh(turns or [], now)
        if turns and not fresh:
            _LOGGER.debug("Conversation %s was idle; starting afresh", clip(conversation))
            await self.clear(conversation)
        return fresh

    async def messages(self, conversation: str) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for turn in await self.turns(conversation):
            out += [{"role": "user", "content": turn.user}, {"role": "assistant", "content": turn.assistant}]
        return out

    async def add(self, conversation: str, user: str, assistant: str) -> None:
        if not self.max_turns:
            return
        now = self._clock()
        turn = Turn(user, assistant, now)
        current = self._fresh(self._ram.pop(conversation, []) or await self.turns(conversation), now)
        self._ram[conversation] = [*current, turn][-self.max_turns :]  # now the most recent
        self._forget_idle(now)
        if self._disk is not None:
            try:
                await asyncio.to_thread(self._disk.add, conversation, turn, self.max_turns)
                if now - self._expired_at > self.idle_seconds:
                    # Now and then, so ids that are never used again do not pile up on disk.
                    self._expired_at = now
                    await asyncio.to_thread(self._disk.expire, now - self.idle_seconds)
            except sqlite3.Error as err:
                self._fail("write", err)

    async def clear(self, conversation: str) -> None:
        # Pruned, not kept as an empty entry: resets of ever new ids must not pile up.
        self._ram.pop(conversation, None)
        if self._disk is not None:
            try:
                await asyncio.to_thread(self._disk.clear, conversation)
            except sqlite3.Error as err:
                self._fail("write", err)

    def _forget_idle(self, now: float) -> None:
        # Bounded memory: drop what has expired anyway (the disk copy expires at the next start).
        cutoff = now - self.idle_seconds
        for key in [k for k, turns in self._ram.items() if not turns or turns[-1].at < cutoff]:
            del self._ram[key]
        while len(self._ram) > self.max_live:
            oldest = next(iter(self._ram))
            _LOGGER.debug("Over %d live conversations: %s leaves memory", self.max_live, clip(oldest))
            del self._ram[oldest]

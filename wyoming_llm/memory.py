"""Conversation memory: the last turns of each conversation, kept in SQLite so a restart loses nothing.

The history file (store.py) is only touched from worker threads, so the event loop never blocks
on the disk. If it cannot be written (read-only, disk full, locked) the log says so once and
memory carries on in the process; every few seconds the file is tried again, and once it works
the conversations that changed meanwhile are written to it. A damaged file is moved aside and a
new one begun.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from wyoming_core.logs import clip

from .store import Store, Turn, is_damaged, open_store

__all__ = ["History", "Turn"]

_LOGGER = logging.getLogger(__name__)

# Conversations held in memory at once; the least recently used beyond it are dropped from
# memory (their turns stay on disk, so only a memory-only store forgets them early).
MAX_LIVE_CONVERSATIONS = 1000
# How often a history file that failed is tried again (at the next turn after this long).
RETRY_SECONDS = 5.0


class History:
    """Per-conversation memory, trimmed to `max_turns` and forgotten after `idle_seconds`."""

    def __init__(
        self,
        path: Path | None,
        max_turns: int,
        idle_seconds: float,
        clock: Callable[[], float] = time.time,
        max_live: int = MAX_LIVE_CONVERSATIONS,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.path = path
        self.max_turns = max_turns
        self.idle_seconds = idle_seconds
        self.max_live = max_live
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._disk: Store | None = None
        # Conversations seen by this process, least recently used first; the only copy if the
        # disk fails.
        self._ram: dict[str, list[Turn]] = {}
        # Conversations changed while the file could not be written (oldest first, bounded).
        self._dirty: dict[str, None] = {}
        # When to try the file again; None: it works (or there is none).
        self._retry_at: float | None = None
        self._reopening = asyncio.Lock()
        self._expired_at = 0.0

    @property
    def persistent(self) -> bool:
        return self._disk is not None

    async def open(self) -> None:
        if self.path is None:
            return
        try:
            self._disk = await asyncio.to_thread(open_store, self.path)
            self._expired_at = self._clock()
            await asyncio.to_thread(self._disk.expire, self._expired_at - self.idle_seconds)
            _LOGGER.info("Conversation history is kept in %s", self.path)
        except (sqlite3.Error, OSError) as err:
            self._fail("open", err)

    async def close(self) -> None:
        if self._disk is None and self._dirty and self.path is not None:
            await self._reopen()  # a last try, so what changed meanwhile is not lost
        if self._disk is not None:
            disk, self._disk = self._disk, None
            await asyncio.to_thread(disk.close)

    def _fail(self, action: str, err: Exception, conversation: str | None = None) -> None:
        """The file failed: memory only until the next try; said once per outage."""
        if self._retry_at is None:
            _LOGGER.error(
                "Cannot %s the conversation history in %s (%s); keeping it in memory only until "
                "it can be written again (tried every %g s). What is only in memory is lost if "
                "the service restarts",
                action,
                self.path,
                err,
                self.retry_seconds,
            )
        else:
            _LOGGER.debug("The conversation history in %s still fails: %s", self.path, err)
        disk, self._disk = self._disk, None
        if disk is not None:
            try:
                disk.close()
            except sqlite3.Error:
                pass
        if conversation is not None:
            self._mark_dirty(conversation)
        if is_damaged(err):
            # Opening again moves the damaged file aside; all of memory is written to the new one.
            for key in self._ram:
                self._mark_dirty(key)
            self._retry_at = self._clock()
        else:
            self._retry_at = self._clock() + self.retry_seconds

    def _mark_dirty(self, conversation: str) -> None:
        if self.path is None:
            return
        self._dirty.pop(conversation, None)
        self._dirty[conversation] = None
        while len(self._dirty) > self.max_live:
            del self._dirty[next(iter(self._dirty))]

    async def _usable(self) -> Store | None:
        """The open file; tried again if it failed and its time has come."""
        if self._disk is None and self._retry_at is not None and self._clock() >= self._retry_at:
            async with self._reopening:
                if self._disk is None and self._retry_at is not None and self._clock() >= self._retry_at:
                    await self._reopen()
        return self._disk

    async def _reopen(self) -> None:
        assert self.path is not None
        try:
            disk = await asyncio.to_thread(open_store, self.path)
        except (sqlite3.Error, OSError) as err:
            self._fail("open", err)
            return
        changed = {key: self._ram.get(key, []) for key in self._dirty}
        try:
            await asyncio.to_thread(disk.replace, changed)
        except sqlite3.Error as err:
            self._disk = disk  # closed by _fail
            self._fail("write", err)
            return
        for key in changed:
            self._dirty.pop(key, None)
        self._disk, self._retry_at = disk, None
        _LOGGER.info(
            "The conversation history in %s can be written again (%d conversations saved)",
            self.path,
            len(changed),
        )

    def _fresh(self, turns: list[Turn], now: float) -> list[Turn]:
        if turns and turns[-1].at < now - self.idle_seconds:
            return []
        return turns[-self.max_turns :] if self.max_turns else []

    async def turns(self, conversation: str) -> list[Turn]:
        """The remembered turns, oldest first (empty if the conversation went idle)."""
        now = self._clock()
        turns = self._ram.get(conversation)
        if turns is None and self.max_turns and conversation not in self._dirty:
            disk = await self._usable()
            if disk is not None:
                try:
                    turns = await asyncio.to_thread(disk.load, conversation, self.max_turns)
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
        disk = await self._usable()
        if disk is None:
            self._mark_dirty(conversation)
            return
        try:
            await asyncio.to_thread(disk.add, conversation, turn, self.max_turns)
            if now - self._expired_at > self.idle_seconds:
                # Now and then, so ids that are never used again do not pile up on disk.
                self._expired_at = now
                await asyncio.to_thread(disk.expire, now - self.idle_seconds)
        except sqlite3.Error as err:
            self._fail("write", err, conversation)

    async def clear(self, conversation: str) -> None:
        # Pruned, not kept as an empty entry: resets of ever new ids must not pile up.
        self._ram.pop(conversation, None)
        disk = await self._usable()
        if disk is None:
            self._mark_dirty(conversation)
            return
        try:
            await asyncio.to_thread(disk.clear, conversation)
        except sqlite3.Error as err:
            self._fail("write", err, conversation)

    def _forget_idle(self, now: float) -> None:
        # Bounded memory: drop what has expired anyway (the disk copy expires at the next start).
        cutoff = now - self.idle_seconds
        for key in [k for k, turns in self._ram.items() if not turns or turns[-1].at < cutoff]:
            del self._ram[key]
        while len(self._ram) > self.max_live:
            oldest = next(iter(self._ram))
            _LOGGER.debug("Over %d live conversations: %s leaves memory", self.max_live, clip(oldest))
            del self._ram[oldest]
            self._dirty.pop(oldest, None)  # its older turns on disk stay as they are

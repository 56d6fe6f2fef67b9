"""Conversation memory: trimmed, expired, kept on disk, and never lost to a broken disk."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from wyoming_llm.memory import History


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_turns_are_trimmed_to_the_last_n(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3", max_turns=2, idle_seconds=300)
    await history.open()
    for n in range(5):
        await history.add("a", f"q{n}", f"a{n}")
    assert [t.user for t in await history.turns("a")] == ["q3", "q4"]
    await history.close()
    reopened = History(tmp_path / "h.sqlite3", max_turns=2, idle_seconds=300)
    await reopened.open()
    assert [t.user for t in await reopened.turns("a")] == ["q3", "q4"]
    await reopened.close()


async def test_idle_conversations_are_forgotten_also_across_restarts(tmp_path: Path) -> None:
    clock = Clock()
    history = History(tmp_path / "h.sqlite3", max_turns=5, idle_seconds=300, clock=clock)
    await history.open()
    await history.add("a", "hello", "hi")
    clock.now += 299
    assert len(await history.turns("a")) == 1
    await history.add("b", "other", "one")
    clock.now += 301
    assert await history.turns("a") == []
    await history.close()
    # The disk copy expires too: a restart long after does not bring old talk back.
    reopened = History(tmp_path / "h.sqlite3", max_turns=5, idle_seconds=300, clock=clock)
    await reopened.open()
    assert await reopened.turns("b") == []
    await reopened.close()


async def test_abandoned_conversations_are_removed_from_disk_while_running(tmp_path: Path) -> None:
    clock = Clock()
    history = History(tmp_path / "h.sqlite3", max_turns=5, idle_seconds=300, clock=clock)
    await history.open()
    await history.add("abandoned", "hello", "hi")
    clock.now += 301
    await history.add("active", "hello", "hi")
    await history.close()
    with sqlite3.connect(tmp_path / "h.sqlite3") as db:
        assert db.execute("SELECT DISTINCT conversation FROM turns").fetchall() == [("active",)]


async def test_conversations_are_kept_apart(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3", max_turns=10, idle_seconds=300)
    await history.open()
    await asyncio.gather(*(history.add(f"c{n % 3}", f"q{n}", f"a{n}") for n in range(30)))
    for c in range(3):
        users = [t.user for t in await history.turns(f"c{c}")]
        assert users and all(int(u[1:]) % 3 == c for u in users)
    await history.clear("c1")
    assert await history.turns("c1") == [] and await history.turns("c0")
    await history.close()


async def test_unwritable_data_dir_falls_back_to_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    history = History(blocker / "h.sqlite3", max_turns=3, idle_seconds=300)
    with caplog.at_level(logging.ERROR):
        await history.open()
    assert not history.persistent
    assert "keeping it in memory only" in caplog.text
    await history.add("a", "q", "a")
    assert [t.user for t in await history.turns("a")] == ["q"]


async def test_full_disk_keeps_answers_and_old_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "h.sqlite3"
    history = History(path, max_turns=50, idle_seconds=300)
    await history.open()
    await history.add("a", "before", "the disk filled up")
    # Simulate a full disk: SQLite may not grow the file any more (SQLITE_FULL).
    disk = history._disk
    assert disk is not None
    pages = disk._db.execute("PRAGMA page_count").fetchone()[0]
    disk._db.execute(f"PRAGMA max_page_count = {pages}")
    with caplog.at_level(logging.ERROR):
        for n in range(40):
            await history.add("a", f"q{n} " + "x" * 2000, "a")
    assert "database or disk is full" in caplog.text and not history.persistent
    assert len(await history.turns("a")) == 41  # nothing lost in this process
    # What was written before is intact on disk.
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT user_text FROM turns ORDER BY id").fetchall()
    assert rows[0] == ("before",)

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
    clock = Clock()  # stands still: no retry within this test
    history = History(path, max_turns=50, idle_seconds=300, clock=clock)
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


# -- the history file: WAL, damage, transient failures (issue 13, item 9) ---------------------------


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])


def disk_users(path: Path, conversation: str) -> list[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT user_text FROM turns WHERE conversation = ? ORDER BY id", (conversation,))
        return [row[0] for row in rows]


async def test_the_history_file_is_in_wal_mode(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3", max_turns=3, idle_seconds=300)
    await history.open()
    await history.add("a", "q", "a")
    # Seen by another connection, as sqlite3 on the command line would.
    assert journal_mode(tmp_path / "h.sqlite3") == "wal"
    await history.close()
    assert journal_mode(tmp_path / "h.sqlite3") == "wal"


def _a_history_with_many_pages(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE turns (id INTEGER PRIMARY KEY AUTOINCREMENT, conversation TEXT NOT NULL, "
            "user_text TEXT NOT NULL, assistant_text TEXT NOT NULL, at REAL NOT NULL);"
            "CREATE INDEX turns_by_conversation ON turns (conversation, id);"
        )
        db.executemany(
            "INSERT INTO turns (conversation, user_text, assistant_text, at) VALUES (?, ?, ?, ?)",
            [(f"c{n % 7}", "x" * 300, "y", 1e10) for n in range(300)],
        )
    assert path.stat().st_size > 10 * 4096


def _damage(path: Path, how: str) -> None:
    if how == "not-a-database":
        path.write_bytes(b"this is not a database\n" * 500)
        return
    _a_history_with_many_pages(path)
    with open(path, "r+b") as handle:
        handle.seek(5 * 4096)
        handle.write(b"\xff" * 4096)


def _set_aside(directory: Path) -> list[Path]:
    return list(directory.glob("h.sqlite3.damaged-*"))


@pytest.mark.parametrize("damage", ["not-a-database", "damaged-pages"])
async def test_a_damaged_history_file_is_moved_aside_and_a_new_one_begun(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    path = tmp_path / "h.sqlite3"
    _damage(path, damage)
    damaged = path.read_bytes()
    history = History(path, max_turns=3, idle_seconds=300)
    with caplog.at_level(logging.WARNING):
        await history.open()
    assert history.persistent
    aside = _set_aside(tmp_path)
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept for a look, untouched
    assert "was damaged" in caplog.text and str(aside[0]) in caplog.text
    await history.add("a", "after", "the damage")
    await history.close()
    assert disk_users(path, "a") == ["after"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_a_locked_history_file_is_written_again_once_it_is_free(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A transient failure (another program holds the write lock past the 5 s busy timeout):
    memory carries on, and the file is tried again and catches up, instead of memory-only
    until a restart."""
    path = tmp_path / "h.sqlite3"
    clock = Clock()
    history = History(path, max_turns=5, idle_seconds=300, clock=clock, retry_seconds=10)
    await history.open()
    await history.add("a", "before", "the lock")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held
    try:
        with caplog.at_level(logging.INFO):
            await history.add("a", "during", "the lock")
        assert not history.persistent and "keeping it in memory only" in caplog.text
        await history.clear("b")  # changed while the file failed: removed on disk later
        clock.now += 5  # before the retry time: not tried, nothing waits for the lock
        await history.add("a", "still during", "the lock")
        assert [t.user for t in await history.turns("a")] == ["before", "during", "still during"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO turns (conversation, user_text, assistant_text, at) VALUES ('b', 'x', 'y', ?)",
            (clock.now,),
        )
    clock.now += 6  # the retry is due: the next turn opens the file again and catches up
    with caplog.at_level(logging.INFO):
        await history.add("c", "after", "the lock")
    assert history.persistent and "can be written again" in caplog.text
    assert disk_users(path, "a") == ["before", "during", "still during"]
    assert disk_users(path, "b") == [] and disk_users(path, "c") == ["after"]
    assert caplog.text.count("keeping it in memory only") == 1
    await history.close()
    # A restart finds all of it.
    reopened = History(path, max_turns=5, idle_seconds=300, clock=clock)
    await reopened.open()
    assert [t.user for t in await reopened.turns("a")] == ["before", "during", "still during"]
    await reopened.close()

"""The history file: one SQLite connection in WAL mode, used from worker threads under a lock.

Every write is one transaction: a crash or a full disk leaves the previous state intact. A
damaged file is moved aside (kept for a look, never deleted) and a new one is started.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wyoming_core.models import make_private_dir

_LOGGER = logging.getLogger(__name__)

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

_INSERT = "INSERT INTO turns (conversation, user_text, assistant_text, at) VALUES (?, ?, ?, ?)"

# SQLite's files next to the database (write-ahead log, shared memory index).
_COMPANIONS = ("-wal", "-shm")
# What people said is in it: for the service's user only.
PRIVATE_FILE_MODE = 0o600


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str
    at: float  # wall-clock seconds: it has to mean the same after a restart


class DamagedHistory(sqlite3.DatabaseError):
    """The file is not a database, or a check found damage in it."""


def is_damaged(err: BaseException) -> bool:
    """Damage that reopening cannot cure (as opposed to a full disk, a lock, a read-only mount)."""
    if isinstance(err, DamagedHistory):
        return True
    name = getattr(err, "sqlite_errorname", None) or ""
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


class Store:
    """The on-disk part; every method runs in a worker thread."""

    def __init__(self, path: Path) -> None:
        make_private_dir(path.parent)
        make_private_file(path)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            with self._lock:
                # First, before anything is written to it: cheap on a history this size, and
                # finds damage now rather than mid-answer.
                check = self._db.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise DamagedHistory(f"the integrity check says: {check}")
                # WAL: readers never wait for the writer, and a write is one append to the log.
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    _LOGGER.debug("SQLite kept journal mode %s for %s", mode, path)
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
        except BaseException:
            self._db.close()
            raise

    @property
    def journal_mode(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

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
                (_INSERT, (conversation, turn.user, turn.assistant, turn.at)),
                (
                    "DELETE FROM turns WHERE conversation = ? AND id NOT IN "
                    "(SELECT id FROM turns WHERE conversation = ? ORDER BY id DESC LIMIT ?)",
                    (conversation, conversation, keep),
                ),
            ]
        )

    def replace(self, conversations: dict[str, list[Turn]]) -> None:
        """Make these conversations on disk exactly the given turns (none: removed), at once."""
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for conversation, turns in conversations.items():
            statements.append(("DELETE FROM turns WHERE conversation = ?", (conversation,)))
            statements += [(_INSERT, (conversation, t.user, t.assistant, t.at)) for t in turns]
        self._transaction(statements)

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


def make_private_file(path: Path) -> None:
    """Create the database file for its owner only (SQLite would make it 0644; its -wal and -shm
    files take the database's mode), and close up one an older version left readable."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
        return
    except FileExistsError:
        pass
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        try:
            path.chmod(PRIVATE_FILE_MODE)
        except PermissionError as err:  # not ours: SQLite will say whether it can use it
            _LOGGER.debug("Cannot make %s private: %s", path, err)
        else:
            _LOGGER.info("Made %s readable by its owner only (it was %o)", path, mode)


def move_aside(path: Path) -> Path:
    """Rename a damaged database (with its log) to PATH.damaged-TIME[-N]; returns the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, target)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, target.with_name(target.name + suffix))
    return target


def open_store(path: Path) -> Store:
    """The store at `path`; a damaged file is moved aside (and logged) and a new one begun."""
    try:
        return Store(path)
    except sqlite3.Error as err:
        if not is_damaged(err) or not path.exists():
            raise
        reason = err
    aside = move_aside(path)
    _LOGGER.warning(
        "The conversation history %s was damaged (%s); it was moved to %s and a new one begun",
        path,
        reason,
        aside,
    )
    return Store(path)

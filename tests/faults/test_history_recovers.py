"""Fault drill: the conversation service's disk fills up and is freed again. The history goes on
being written once there is room, with what was said meanwhile (issue 13, item 9).

A real full file system: a small tmpfs (needs root with mount rights; skipped otherwise)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid

import pytest

from tests.faults.test_data_dir import Mount, fill_up, tmpfs  # noqa: F401 - the fixture
from tests.robustness.targets import BUILDERS
from tests.support.services import ServiceProcess
from wyoming_core.client import converse


@pytest.fixture
def llm_missing() -> None:
    reason = BUILDERS["llm"].missing()
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.usefixtures("llm_missing")
async def test_llm_writes_its_history_again_once_the_disk_has_room(tmpfs: Mount) -> None:  # noqa: F811
    from tests.support.fake_ollama import FakeOllama

    data_dir = tmpfs(size="512k")
    async with FakeOllama(reply="Noted.") as fake:
        service = ServiceProcess("wyoming_llm", "--ollama-url", fake.url, "--data-dir", str(data_dir)).start()
        try:
            service.wait_listening()
            await service.wait_ready(marker="is loaded and warm")
            assert (await converse(service.uri, "Before.", "full", timeout=60)).handled
            fill_up(data_dir / "filler")
            during = [f"During {n}. " + uuid.uuid4().hex * 40 for n in range(3)]
            for text in during:
                assert (await converse(service.uri, text, "full", timeout=60)).handled
            assert "keeping it in memory only" in service.log()
            (data_dir / "filler").unlink()
            # The file is tried again at a turn a few seconds later: talk until it is.
            deadline = time.monotonic() + 90
            while "can be written again" not in service.log():
                assert time.monotonic() < deadline, service.log()[-3000:]
                assert (await converse(service.uri, "Are you there?", "poke", timeout=60)).handled
                await asyncio.sleep(1)
            assert (await converse(service.uri, "After.", "full", timeout=60)).handled
            # Remembered all along, in order.
            assert fake.chats[-1].user_texts == ["Before.", *during, "After."]
        finally:
            service.stop()
    # And on disk, for the next start: nothing said while the disk was full is lost.
    with sqlite3.connect(data_dir / "history.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = db.execute("SELECT user_text FROM turns WHERE conversation LIKE '%full' ORDER BY id")
        users = [row[0] for row in rows]
    assert users == ["Before.", *during, "After."], users

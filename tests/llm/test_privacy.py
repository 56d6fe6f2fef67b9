"""What people said stays private: out of the log unless asked for (--log-transcripts), and the
history file for the service's user only (issue 13, item 8)."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.fake_ollama import FakeOllama
from tests.support.services import ServiceProcess
from tests.support.waiting import until
from wyoming_core.client import converse

SECRET = "My locker code is pelican nine."
REPLY = "I will keep the flamingo in mind."


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama(reply=REPLY, tokens_per_second=1000) as server:
        yield server


async def _llm(
    fake: FakeOllama, data_dir: Path, factory: list[ServiceProcess], *flags: str
) -> ServiceProcess:
    service = ServiceProcess("wyoming_llm", "--ollama-url", fake.url, "--data-dir", str(data_dir), *flags)
    factory.append(service.start())
    service.wait_listening()
    await service.wait_ready(marker="is loaded and warm")
    return service


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def history_modes(data_dir: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in data_dir.glob("history.sqlite3*")}


@pytest.mark.parametrize("opted_in", [False, True], ids=["default", "log-transcripts"])
async def test_questions_and_answers_are_logged_only_when_asked_for(
    opted_in: bool, fake: FakeOllama, tmp_path: Path, service_factory: list[ServiceProcess]
) -> None:
    flags = ["--log-transcripts"] if opted_in else []
    llm = await _llm(fake, tmp_path / "llm", service_factory, *flags)
    reply = await converse(llm.uri, SECRET, "private", timeout=60)
    assert reply.text == REPLY
    llm.stop()  # everything it had to say is in the log now
    log = llm.log()
    assert "is shutting down" in log, log[-2000:]
    if opted_in:
        assert f"Transcript: '{SECRET}'" in log and f"Reply: '{REPLY}'" in log, log[-3000:]
    else:
        assert "pelican" not in log and "flamingo" not in log, log[-3000:]


async def test_the_history_is_for_the_services_user_only(
    fake: FakeOllama, tmp_path: Path, service_factory: list[ServiceProcess]
) -> None:
    data_dir = tmp_path / "new" / "llm"  # neither exists yet
    llm = await _llm(fake, data_dir, service_factory)
    assert (await converse(llm.uri, SECRET, "private", timeout=60)).handled
    modes = history_modes(data_dir)
    assert set(modes) >= {"history.sqlite3", "history.sqlite3-wal"}, modes
    assert set(modes.values()) == {0o600}, modes
    assert mode(data_dir) == 0o700 and mode(data_dir.parent) == 0o700


async def test_a_history_left_readable_by_an_older_version_is_closed_up(
    fake: FakeOllama, tmp_path: Path, service_factory: list[ServiceProcess]
) -> None:
    data_dir = tmp_path / "llm"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "history.sqlite3") as db:
        db.execute("CREATE TABLE old (x)")
    (data_dir / "history.sqlite3").chmod(0o644)
    llm = await _llm(fake, data_dir, service_factory)
    assert (await converse(llm.uri, SECRET, "private", timeout=60)).handled
    await until(
        lambda: set(history_modes(data_dir).values()) == {0o600}, 10, lambda: str(history_modes(data_dir))
    )

"""What a client names cannot grow the conversation service: huge conversation ids and languages
(issue 13, item 5). The real service as a process, a fake Ollama at the wire, loopback only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.fake_ollama import FakeOllama, echo_reply
from tests.support.services import ServiceProcess
from tests.support.waiting import until
from wyoming_core.client import converse
from wyoming_llm.local import RESET_REPLY

KB = 1024
# Far below what the unbounded ids did (RSS +56 MB, history file 19.4 MB), far above noise.
RSS_GROWTH_LIMIT_MB = 25.0
HISTORY_LIMIT_BYTES = 2 * 1024 * 1024


def big_id(size: int) -> str:
    """A distinct id of `size` characters."""
    head = uuid.uuid4().hex
    return head + "x" * (size - len(head))


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama(reply=echo_reply, tokens_per_second=1000) as server:
        yield server


@pytest.fixture(autouse=True)
def no_requests(fake: FakeOllama) -> Iterator[None]:
    fake.requests.clear()
    yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llm-bounds")


@pytest.fixture(scope="module")
async def llm(fake: FakeOllama, data_dir: Path) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess(
        "wyoming_llm", "--ollama-url", fake.url, "--data-dir", str(data_dir), "--answer-timeout", "30"
    ).start()
    try:
        service.wait_listening()
        await service.wait_ready(timeout=120, marker="is loaded and warm")
        yield service
    finally:
        service.stop()


def history_bytes(data_dir: Path) -> int:
    """The history file with its journal (WAL) files."""
    return sum(p.stat().st_size for p in data_dir.glob("history.sqlite3*"))


async def test_start_over_with_256_kb_ids_does_not_grow_memory(llm: ServiceProcess, fake: FakeOllama) -> None:
    # Warm up the paths (allocator pools, first imports) before the baseline.
    for _ in range(5):
        await converse(llm.uri, "start over", big_id(256 * KB), timeout=60)
    before = llm.rss_mb()
    for _ in range(200):
        reply = await converse(llm.uri, "start over", big_id(256 * KB), timeout=60)
        assert (reply.handled, reply.text) == (True, RESET_REPLY)
    growth = llm.rss_mb() - before
    assert growth < RSS_GROWTH_LIMIT_MB, f"RSS grew {growth:.0f} MB over 200 resets of 256 KB ids"
    assert not fake.chats, "a reset needs no model"
    assert llm.alive()


async def test_100_kb_ids_keep_the_history_file_small(llm: ServiceProcess, data_dir: Path) -> None:
    before = history_bytes(data_dir)
    for n in range(100):
        reply = await converse(llm.uri, f"Remember number {n}.", big_id(100 * KB), timeout=60)
        assert reply.handled, reply
    growth = history_bytes(data_dir) - before
    assert growth < HISTORY_LIMIT_BYTES, f"history grew {growth / 1e6:.1f} MB for 100 turns"


async def test_a_long_id_still_names_one_conversation(llm: ServiceProcess, fake: FakeOllama) -> None:
    same = big_id(100 * KB)
    await converse(llm.uri, "My box is blue.", same, timeout=60)
    await converse(llm.uri, "What colour is my box?", same, timeout=60)
    assert fake.chats[-1].user_texts == ["My box is blue.", "What colour is my box?"]
    # One character more is another conversation.
    await converse(llm.uri, "What colour is my box?", same + "y", timeout=60)
    assert fake.chats[-1].user_texts == ["What colour is my box?"]
    # And "start over" with the long id forgets it.
    assert (await converse(llm.uri, "start over", same, timeout=60)).text == RESET_REPLY
    await converse(llm.uri, "What colour is my box?", same, timeout=60)
    assert fake.chats[-1].user_texts == ["What colour is my box?"]
    # Ids up to 128 characters come back to the client as they were sent.
    short = "k" * 128
    assert (await converse(llm.uri, "Hello.", short, timeout=60)).context == {"conversation_id": short}


async def test_a_300_kb_language_is_not_put_into_the_prompt(llm: ServiceProcess, fake: FakeOllama) -> None:
    huge = "v" * (300 * KB) + "\n\x1b[31m"
    for _ in range(3):
        reply = await converse(llm.uri, "Hello there.", "lang-huge", language=huge, timeout=60)
        assert reply.handled, reply
    system = fake.chats[-1].messages[0]["content"]
    assert len(system) < 2000, f"system prompt of {len(system)} characters"
    assert "vvvv" not in system and "The user speaks" not in system  # the service's default
    # A real code still chooses the answer's language.
    await converse(llm.uri, "Hallo.", "lang-ok", language="de-DE", timeout=60)
    assert "answer in German" in fake.chats[-1].messages[0]["content"]
    # Said once (escaped and cut), not per request.
    await until(lambda: "not a language code" in llm.log(), 30, llm.log)
    log = llm.log()
    assert log.count("not a language code") == 1, log[-3000:]
    assert "\x1b[31m" not in log and max(map(len, log.splitlines())) < 2000

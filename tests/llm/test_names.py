"""Conversation keys are bounded, languages checked, and memory holds a bounded number of
conversations (issue 13, item 5)."""

from __future__ import annotations

import logging

import pytest

from wyoming_llm.memory import History
from wyoming_llm.names import MAX_ID_CHARS, LanguageCheck, conversation_key, is_language_code


def test_short_ids_are_kept_and_long_ones_hashed_the_same_way_each_time() -> None:
    short = "x" * MAX_ID_CHARS
    assert conversation_key({"conversation_id": short}) == f"conversation_id:{short}"
    assert conversation_key({"satellite_id": 7}) == "satellite_id:7"
    long = "y" * 100_000
    key = conversation_key({"conversation_id": long})
    assert key is not None and len(key) < 100 and key.startswith("conversation_id:sha256:")
    assert conversation_key({"conversation_id": long}) == key
    assert conversation_key({"conversation_id": long + "z"}) != key
    # Odd ids fall through to the next key, or to none.
    assert conversation_key({"conversation_id": True, "device_id": "d"}) == "device_id:d"
    assert conversation_key({"conversation_id": " ", "device_id": ["d"]}) is None


@pytest.mark.parametrize("code", ["en", "de-DE", "pt_BR", "zh-Hans-CN", "sr-Latn", "yue"])
def test_language_codes_pass(code: str) -> None:
    assert is_language_code(code)
    assert LanguageCheck("en")(code) == code


@pytest.mark.parametrize("bad", ["", "e", "english please", "en\nx", "de-" + "x" * 40, "v" * 300_000, "12"])
def test_anything_else_is_the_default_language(bad: str) -> None:
    assert LanguageCheck("en")(bad) is None


def test_a_bad_language_is_logged_once_escaped_and_cut(caplog: pytest.LogCaptureFixture) -> None:
    check = LanguageCheck("en")
    bad = "v" * 300_000 + "\x1b[31m"
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            check(bad)
        check("other nonsense")
    assert len(caplog.records) == 2
    line = caplog.records[0].getMessage()
    assert len(line) < 500 and "\x1b" not in line and "default language (en)" in line


async def test_memory_holds_a_bounded_number_of_conversations() -> None:
    history = History(None, max_turns=3, idle_seconds=300, max_live=10)
    for n in range(100):
        await history.add(f"c{n}", "q", "a")
    assert len(history._ram) == 10
    # The most recently used stay.
    assert [t.user for t in await history.turns("c99")] == ["q"]
    assert await history.turns("c0") == []


async def test_a_reset_leaves_nothing_behind() -> None:
    history = History(None, max_turns=3, idle_seconds=300)
    await history.add("kept", "q", "a")
    for n in range(50):
        await history.clear(f"never-used-{n}")
        await history.add(f"reset-{n}", "q", "a")
        await history.clear(f"reset-{n}")
    assert list(history._ram) == ["kept"]

"""What a service offers, as the table and the pools see it (no network)."""

from __future__ import annotations

import pytest
from wyoming.info import Info, Satellite

from discovery.__main__ import format_table, rows
from discovery.browse import FoundService
from discovery.catalog import normalise_kind, offers, short_list
from tests.discovery.fake_service import _ATTR, build_info


def test_offers_per_kind() -> None:
    asr = offers(build_info("asr", "base", ["en", "de"]))
    assert [(o.kind, o.program, o.items, o.languages) for o in asr] == [
        ("asr", "fake-asr", ("base",), ("en", "de"))
    ]
    assert offers(build_info("tts", "en_US-joe-medium", ["en_US"]))[0].items == ("en_US-joe-medium",)
    assert offers(build_info("handle", "llama3.2", ["en"]))[0].kind == "handle"
    sat = Info(satellite=Satellite("kitchen", _ATTR, True, None, "1", active_wake_words=["okay_nabu"]))
    assert [(o.kind, o.items) for o in offers(sat)] == [("satellite", ("okay_nabu",))]


def test_kinds_and_short_lists() -> None:
    assert normalise_kind("STT") == "asr"
    assert normalise_kind("llm") == "handle"
    with pytest.raises(ValueError, match="Unknown service kind"):
        normalise_kind("toaster")
    assert short_list(()) == "-"
    assert short_list(tuple("abcdefgh"), 3) == "a, b, c, … (8)"


def test_table_sorts_by_kind_and_says_who_does_not_answer() -> None:
    tts = FoundService("b-tts", "10.0.0.2", 10200, offers(build_info("tts", "joe", ["en_US"])))
    asr = FoundService("z-stt", "10.0.0.1", 10300, offers(build_info("asr", "base", ["en"])))
    dead = FoundService("dead", "10.0.0.3", 10400, error="Cannot connect")
    services = sorted([tts, dead, asr], key=lambda s: s.sort_key)
    assert [s.name for s in services] == ["z-stt", "b-tts", "dead"]
    table = format_table(services)
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "KIND", "MODELS/VOICES", "LANGUAGES"]
    assert "10.0.0.1:10300" in lines[1] and " asr " in lines[1]
    assert "not answering: Cannot connect" in lines[3]
    assert rows([]) == []
    assert "No Wyoming services found" in format_table([])

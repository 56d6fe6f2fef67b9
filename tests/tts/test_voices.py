"""Voice catalogue and the loaded-voice cache, without starting the service."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from wyoming_core.workers import PriorityPool
from wyoming_tts.engine import LoadedVoice, VoiceCache, VoiceLoadError
from wyoming_tts.voices import VoiceCatalogue, VoiceEntry, language_matches


def _fake_voice(data: Path, name: str, **config: Any) -> None:
    (data / f"{name}.onnx").write_bytes(b"")
    base = {"audio": {"sample_rate": 16000, "quality": "low"}, "num_speakers": 1, "espeak": {"voice": "en"}}
    (data / f"{name}.onnx.json").write_text(json.dumps({**base, **config}))


def test_catalogue_finds_voices_by_their_file_name(tmp_path: Path) -> None:
    _fake_voice(tmp_path, "de_DE-thorsten-low", language={"code": "de_DE"})
    (tmp_path / "nested").mkdir()
    _fake_voice(tmp_path / "nested", "en_GB-multi-medium", speaker_id_map={"b": 1, "a": 0})
    (tmp_path / "lonely.onnx").write_bytes(b"")  # no config: skipped
    catalogue = VoiceCatalogue((tmp_path,), packages=())
    voices = catalogue.voices()
    assert set(voices) == {"de_DE-thorsten-low", "en_GB-multi-medium"}
    assert voices["de_DE-thorsten-low"].languages == ("de_DE",)
    multi = voices["en_GB-multi-medium"]
    assert multi.languages == ("en_GB",) and multi.speakers == ("a", "b")
    assert multi.speaker_id("b") == 1 and multi.speaker_id("1") == 1 and multi.speaker_id("c") is None

    _fake_voice(tmp_path, "fr_FR-new-low")  # dropped in while running
    assert catalogue.find("fr_FR-new-low") is not None
    assert catalogue.for_language("de")
    assert catalogue.for_language("en-GB") == multi
    assert catalogue.for_language("it") is None


def test_language_matching() -> None:
    assert language_matches("en", "en_US") and language_matches("en-US", "en_US")
    assert not language_matches("en_GB", "en_US") and not language_matches("e", "en_US")


def _entry(name: str) -> VoiceEntry:
    path = Path(f"/nowhere/{name}.onnx")
    return VoiceEntry(name, path, path, "test", ("en_US",), (), {}, 16000, None, None, None)


async def test_cache_loads_once_evicts_least_recently_used_and_never_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[str] = []
    release = threading.Event()

    def fake_load(_self: VoiceCache, entry: VoiceEntry) -> LoadedVoice:
        loads.append(entry.name)
        if entry.name == "slow":
            release.wait(10)
        if entry.name == "broken":
            raise VoiceLoadError("broken on purpose")
        return object.__new__(LoadedVoice)

    monkeypatch.setattr(VoiceCache, "_load", fake_load)
    pool = PriorityPool(1, "test")
    cache = VoiceCache(2, 1, pool)
    try:
        a, a_again = await asyncio.gather(cache.get(_entry("a")), cache.get(_entry("a")))
        assert a is a_again and loads == ["a"]  # one load shared by both requests

        slow = asyncio.ensure_future(cache.get(_entry("slow")))
        await asyncio.sleep(0.05)
        # Another voice is served while "slow" is still loading.
        await asyncio.wait_for(cache.get(_entry("b")), 5)
        release.set()
        await slow
        assert cache.loaded() == ["slow", "b"]  # "a" was least recently used
        await cache.get(_entry("a"))
        assert loads.count("a") == 2

        for _ in range(2):  # a failed load is not cached: the next request tries again
            with pytest.raises(VoiceLoadError):
                await cache.get(_entry("broken"))
        assert loads.count("broken") == 2
    finally:
        release.set()
        pool.shutdown()

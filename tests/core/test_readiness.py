"""Readiness through the protocol (issue 15, item 5): `describe` says whether a service's model
or voice is loaded (`wyoming_core.readiness`), so tests and `python -m stack` need no log line.

The STT loads its model after it starts to listen: describe says `[loading]` meanwhile and then
is ready, with the model `installed` all along (Home Assistant builds its languages from that).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from wyoming.info import AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice

from tests.support.services import ServiceProcess
from wyoming_core import readiness
from wyoming_core.client import VoiceError, describe

_ATTR = Attribution(name="test", url="https://example.invalid")


def _asr(description: str) -> Info:
    model = AsrModel(
        name="base",
        attribution=_ATTR,
        installed=True,
        description=description,
        version=None,
        languages=["en"],
    )
    program = AsrProgram(
        name="stt", attribution=_ATTR, installed=True, description="STT", version=None, models=[model]
    )
    return Info(asr=[program])


def test_the_description_carries_the_state() -> None:
    assert readiness.described("Whisper base") == "Whisper base"
    loading = readiness.described("Whisper base", loading=True)
    failed = readiness.described("Whisper base", failed=True)
    assert readiness.is_ready(_asr("Whisper base"))
    assert not readiness.is_ready(_asr(loading)) and readiness.loading(_asr(loading)) == ["base"]
    # Not loaded: nothing more to wait for (the service says what it could not load).
    assert readiness.is_ready(_asr(failed)) and readiness.not_loaded(_asr(failed)) == ["base"]
    assert not readiness.is_ready(Info())  # offers nothing: nothing to be ready
    voice = TtsVoice(
        name="joe", attribution=_ATTR, installed=True, description=None, version=None, languages=[]
    )
    tts = TtsProgram(
        name="tts", attribution=_ATTR, installed=True, description=None, version=None, voices=[voice]
    )
    assert readiness.is_ready(Info(tts=[tts]))  # other services say nothing: they are ready


async def test_stt_describe_says_loading_then_ready(
    tmp_path: Path, service_factory: list[ServiceProcess]
) -> None:
    service = ServiceProcess(
        "wyoming_stt", "--model", "base", "--data-dir", str(tmp_path), "--language", "en"
    )
    service_factory.append(service.start())
    service.wait_listening(60)
    seen: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            info = await describe(service.uri, timeout=5.0)
        except VoiceError:
            continue
        state = "ready" if readiness.is_ready(info) else "loading" if readiness.loading(info) else "other"
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == "ready":
            break
        await asyncio.sleep(0.1)
    assert seen == ["loading", "ready"], (seen, service.log())
    # Installed all along: Home Assistant builds its languages from installed models.
    assert all(model.installed for program in info.asr for model in program.models)


async def test_tts_describe_is_ready_once_its_voice_is_loaded(tts_service: ServiceProcess) -> None:
    info = await describe(tts_service.uri)
    assert readiness.is_ready(info), info
    assert "en_US-joe-medium" in [voice.name for program in info.tts for voice in program.voices]

"""Fixtures for the Home Assistant tests: one headless HA per version, shared by the session."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ha.harness import HA_VERSIONS, Home, HomeAssistant, ha_python, ha_ready
from tests.support.fake_ollama import FakeOllama
from tests.support.services import ServiceProcess
from tests.support.speech import piper_speech, silence
from wyoming_core.audio import AudioFormat, to_stt_format, write_wav

STT_FORMAT = AudioFormat(16000, 2, 1)


def _missing(version: str) -> None:
    """In CI a missing HA venv is a failure, never a silent skip; locally it may be skipped."""
    message = (
        f"Home Assistant {version} is not set up at {ha_python(version)}: "
        "run scripts/setup-ha.sh (needs CPython 3.13, e.g. pyenv install 3.13.0)"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session", params=HA_VERSIONS, ids=[f"ha{v}" for v in HA_VERSIONS])
async def ha(request: pytest.FixtureRequest) -> AsyncIterator[HomeAssistant]:
    version: str = request.param
    if not ha_ready(version):
        _missing(version)
    hass = await HomeAssistant(version).start()
    try:
        yield hass
    finally:
        await hass.stop()


@pytest.fixture(scope="session")
async def ha_home(ha: HomeAssistant) -> Home:
    """The test home in each HA version (set up once): Kitchen Lights, Bedroom Lamp and
    Living Room Lights (template lights, in those areas), the Coffee Maker switch (Kitchen),
    exposed to Assist; the MCP server integration; a long-lived access token. States are
    shared by the session: a test starts with `await ha_home.reset()` (all off)."""
    return await Home.setup(ha)


def speech_wav(path: Path, text: str, trailing_silence: float = 1.5) -> Path:
    """Real speech as the 16 kHz mono WAV a satellite would stream, with silence after it
    so the pipeline's VAD sees the end of the command."""
    pcm, fmt = piper_speech(text)
    audio = silence(0.3, STT_FORMAT) + to_stt_format(pcm, fmt) + silence(trailing_silence, STT_FORMAT)
    write_wav(path, audio, STT_FORMAT)
    return path


def memory_reply(messages: list[dict[str, Any]]) -> str:
    """A fake model whose answer shows whether the earlier turns reached it."""
    users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
    if "what was the word" in users[-1].lower():
        for text in reversed(users[:-1]):
            if found := re.search(r"the word (\w+)", text, re.IGNORECASE):
                return f"The word was {found.group(1).lower()}."
        return "You did not tell me a word."
    if found := re.search(r"the word (\w+)", users[-1], re.IGNORECASE):
        return f"Okay, I will remember {found.group(1).lower()}."
    return "Okay."


@dataclass
class Llm:
    service: ServiceProcess
    fake: FakeOllama


@pytest.fixture(scope="session")
async def ha_llm(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Llm]:
    """Our conversation service on an in-process fake Ollama whose answers reveal memory."""
    async with FakeOllama(reply=memory_reply, tokens_per_second=100.0) as fake:
        service = ServiceProcess(
            "wyoming_llm",
            "--ollama-url",
            fake.url,
            "--data-dir",
            str(tmp_path_factory.mktemp("ha-llm")),
            "--debug",
        ).start()
        try:
            service.wait_listening()
            await service.wait_ready(marker="is loaded and warm")
            yield Llm(service, fake)
        finally:
            service.stop()

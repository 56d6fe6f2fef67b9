"""Our STT listening for the names a real Home Assistant exposes (`--ha-url`, `--ha-token-file`).

The test home gets devices whose names Whisper does not know ("Zigbee Ikea Tradfri Lamp",
"Lumière du Salon", ...), in rooms it does not know ("Ottilie's Room"). Commands naming them
are spoken by piper and transcribed by the real model, by an STT connected to Home Assistant
and by one that is not (same model, same audio): the names must come out right with Home
Assistant, and without it at least one must not (else the test would prove nothing).
Readiness and the number of names are read from describe, never from the log.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.ha.harness import Home
from tests.support.names import heard, names_in, spoken
from tests.support.services import ServiceProcess, free_port
from tests.support.speech import piper_speech, silence
from tests.support.wer import wer
from wyoming_core.audio import AudioFormat, to_stt_format
from wyoming_core.client import describe, transcribe

pytestmark = pytest.mark.ha

STT_FORMAT = AudioFormat(16000, 2, 1)
NAMED_DEVICES = [
    {"name": "Zigbee Ikea Tradfri Lamp", "area": "Ottilie's Room"},
    {"name": "Lumière du Salon", "area": "Salon"},
    {"name": "Hue Go", "area": "Ottilie's Room"},
    {"name": "Moccamaster", "area": "Kitchenette", "domain": "switch"},
]
COMMANDS = [
    "Turn on the [Zigbee Ikea Tradfri lamp].",
    "Switch off [Lumière du salon].",
    "Dim the [Hue Go] in [Ottilie's room].",
    "Turn on the [Moccamaster] in the [kitchenette].",
]
# Added while the STT runs: heard after the next refresh.
LATER = {"name": "Nanoleaf Shapes", "area": "Study"}
LATER_COMMAND = "Turn off the [Nanoleaf shapes]."
REFRESH_SECONDS = 2.0


def speech(text: str) -> bytes:
    pcm, fmt = piper_speech(text)
    return silence(0.3, STT_FORMAT) + to_stt_format(pcm, fmt) + silence(1.0, STT_FORMAT)


async def names_count(uri: str) -> int | None:
    """How many Home Assistant names the STT listens for, as describe says (None: none)."""
    info = await describe(uri, timeout=10)
    found = re.search(r"listening for (\d+) names from Home Assistant", info.asr[0].description or "")
    return int(found.group(1)) if found else None


async def wait_names(service: ServiceProcess, more_than: int, timeout: float = 90.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = await names_count(service.uri)
        if count is not None and count > more_than:
            return count
        assert time.monotonic() < deadline, f"names never went above {more_than} ({count}):\n{service.log()}"
        await asyncio.sleep(0.3)


class NamedDevices:
    def __init__(self, home: Home) -> None:
        self.home = home
        self.entity_ids: list[str] = []
        self.area_ids: list[str] = []

    async def add(self, devices: list[dict[str, Any]]) -> None:
        result = await self.home.ha.call("add_named_devices", devices=devices)
        self.entity_ids += [device["entity_id"] for device in result["devices"]]
        self.area_ids += result["new_area_ids"]

    async def remove(self) -> None:
        await self.home.ha.call("remove_named_devices", entity_ids=self.entity_ids, area_ids=self.area_ids)


@pytest.fixture
async def named(ha_home: Home) -> AsyncIterator[NamedDevices]:
    """The unusual devices, in the shared test home for this test only."""
    devices = NamedDevices(ha_home)
    try:
        await devices.add(NAMED_DEVICES)
        yield devices
    finally:
        await devices.remove()


def start_stt(stt_data_dir: Path, tmp: Path, *extra: str) -> ServiceProcess:
    service = ServiceProcess(
        "wyoming_stt",
        "--model",
        "base",
        "--data-dir",
        str(stt_data_dir),
        "--language",
        "en",
        "--debug",
        *extra,
    ).start()
    service.wait_listening()
    return service


def token_file(tmp: Path, token: str) -> Path:
    path = tmp / "ha-token"
    path.write_text(token)
    path.chmod(0o600)
    return path


async def test_names_from_home_assistant_are_heard_right(
    named: NamedDevices,
    stt_service: ServiceProcess,
    stt_data_dir: Path,
    tmp_path: Path,
    service_factory: list[ServiceProcess],
) -> None:
    home = named.home
    stt = start_stt(
        stt_data_dir,
        tmp_path,
        "--ha-url",
        home.url,
        "--ha-token-file",
        str(token_file(tmp_path, home.token)),
        "--ha-names-refresh",
        str(REFRESH_SECONDS),
    )
    service_factory.append(stt)
    # The new devices' names and rooms at least (the test home's own come on top).
    count = await wait_names(stt, more_than=6)

    missed_without = []
    for command in COMMANDS:
        audio = speech(spoken(command))
        with_ha = await transcribe(stt.uri, audio, STT_FORMAT, language="en", timeout=120)
        for name in names_in(command):
            assert heard(name, with_ha.text), f"{name!r} not heard in {with_ha.text!r} ({command})"
        without = await transcribe(stt_service.uri, audio, STT_FORMAT, language="en", timeout=120)
        missed_without += [name for name in names_in(command) if not heard(name, without.text)]
    assert missed_without, "the model heard every name without Home Assistant: these names prove nothing"

    # A device added in Home Assistant is listened for after the next refresh.
    await named.add([LATER])
    await wait_names(stt, more_than=count)
    text = (await transcribe(stt.uri, speech(spoken(LATER_COMMAND)), STT_FORMAT, language="en")).text
    for name in names_in(LATER_COMMAND):
        assert heard(name, text), f"{name!r} not heard in {text!r}"


async def test_stt_works_as_before_when_home_assistant_is_unreachable(
    stt_data_dir: Path, tmp_path: Path, service_factory: list[ServiceProcess]
) -> None:
    stt = start_stt(
        stt_data_dir,
        tmp_path,
        "--ha-url",
        f"http://127.0.0.1:{free_port()}",
        "--ha-token-file",
        str(token_file(tmp_path, "not-a-real-token")),
    )
    service_factory.append(stt)
    assert await names_count(stt.uri) is None
    sentence = "Turn on the lights in the kitchen."
    result = await transcribe(stt.uri, speech(sentence), STT_FORMAT, language="en", timeout=120)
    assert wer(sentence, result.text) <= 0.2, result
    assert stt.alive()
    assert await names_count(stt.uri) is None

"""Our satellite's Home Assistant mode against the real Home Assistant: announcements, timers,
mute (HA pauses the satellite, then connects again: the new connection replaces the old),
and barge-in while HA's answer plays. tests/satellite/test_ha.py covers the same, and finer
cases, with a fake HA client.

Asserted on what HA and the user see: HA's satellite entity states, the requests our model
received, the speaker output (transcribed back by the real STT, timed against when the wake
word entered the mic, or the feedback sounds found in it sample for sample).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.ha.conftest import Llm, memory_reply
from tests.ha.harness import DriverError, HomeAssistant
from tests.ha.test_ha_pipeline import use_our_pipeline
from tests.satellite.helpers import (
    WAKE_REQUEST,
    GatedMic,
    SatelliteRun,
    TimedSpeaker,
    silence,
    snd_file_pcm,
    speech,
    times_played,
)
from tests.support.services import ServiceProcess, free_port
from tests.support.waiting import until
from wyoming_core.audio import AudioFormat
from wyoming_core.client import transcribe

pytestmark = [pytest.mark.ha, pytest.mark.timeout(600)]

SND = AudioFormat(22050, 2, 1)
MIC_BYTES_PER_SECOND = 32000
LONG_ANSWER = " ".join(f"This is sentence number {n} of a rather long answer." for n in range(1, 9))


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _entity(entry: dict[str, Any], domain: str, part: str = "") -> str:
    found = [e["entity_id"] for e in entry["entities"] if e["domain"] == domain and part in e["entity_id"]]
    assert len(found) == 1, (domain, part, entry["entities"])
    return str(found[0])


@asynccontextmanager
async def _satellite_in_ha(
    ha: HomeAssistant, *args: str
) -> AsyncIterator[tuple[SatelliteRun, dict[str, Any]]]:
    """Our satellite, added to HA as a user does (Wyoming integration, host and port)."""
    port = free_port()
    sat = await SatelliteRun(
        "--uri",
        f"tcp://127.0.0.1:{port}",
        "--name",
        "Kitchen",
        "--area",
        "Kitchen",
        "--wake-word",
        "hey_jarvis",
        *args,
    ).start()
    entry_id = None
    try:
        await until(lambda: _listening(port), 90, sat.log)
        entry = await ha.call("add_entry", host="127.0.0.1", port=port)
        assert entry["type"] == "create_entry" and entry["title"] == "Kitchen", entry
        entry_id = entry["entry_id"]
        yield sat, entry
    finally:
        await sat.stop()
        if entry_id is not None:
            await ha.call("remove_entry", entry_id=entry_id)


@pytest.fixture
async def announcing(ha: HomeAssistant) -> AsyncIterator[None]:
    """HA's URL set to where ffmpeg can fetch an announcement's audio from; unset after."""
    await ha.call("set_internal_url")
    try:
        yield
    finally:
        await ha.call("set_internal_url", local=False)


async def _announce(ha: HomeAssistant, satellite: str, message: str, timeout: float = 90.0) -> None:
    """HA's assist_satellite.announce (TTS on the pipeline's engine, streamed to the satellite;
    returns once the satellite says `played`). Retried until HA has connected to it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = {"entity_id": satellite, "message": message, "preannounce": False}
            await ha.call("call_service", domain="assist_satellite", service="announce", data=data)
            return
        except DriverError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def _said_and_heard(mic: GatedMic, part: int, seconds: float) -> None:
    """Until part `part` has entered the mic and `seconds` more have passed (time to detect)."""
    await until(lambda: mic.said_at(part) is not None, 30)
    said_at = mic.said_at(part)
    assert said_at is not None
    await asyncio.sleep(max(0.0, said_at + seconds - time.monotonic()))


async def test_announcement_timer_and_mute_through_home_assistant(
    ha: HomeAssistant,
    stt_service: ServiceProcess,
    ha_llm: Llm,
    tts_service: ServiceProcess,
    tmp_path: Path,
    announcing: None,
) -> None:
    await use_our_pipeline(ha, stt_service, ha_llm, tts_service)
    request = speech(WAKE_REQUEST) + silence(1.0)
    # Part 1 is said while HA has the satellite muted; part 2, after unmuting, repeats the
    # request until HA (which connects again by itself) has taken the satellite back.
    mic = GatedMic(tmp_path / "mic", silence(0.5), request, (request + silence(5.0)) * 8)
    out = tmp_path / "out.wav"
    async with _satellite_in_ha(ha, "--mic-command", mic.command(), "--snd-file", str(out)) as (sat, entry):
        satellite = _entity(entry, "assist_satellite")
        mute = _entity(entry, "switch", "mute")

        # An announcement: HA's TTS of the message comes out of the speaker.
        await _announce(ha, satellite, "The laundry is done and the dryer is empty.")
        pcm = snd_file_pcm(out)
        heard = (await transcribe(stt_service.uri, pcm + bytes(SND.bytes_per_second), SND)).text.lower()
        assert "laundry" in heard and "empty" in heard, heard

        # A timer set on the satellite's device rings there when it is done.
        started = await ha.call("start_timer", entity_id=satellite, seconds=2)
        assert started["response_type"] == "action_done", started
        await until(lambda: times_played(snd_file_pcm(out), "timer") >= 1, 60, sat.log)

        # Muted in HA (pause-satellite): the wake word is not even heard (no wake sound).
        await ha.call("call_service", domain="switch", service="turn_on", data={"entity_id": mute})
        await ha.call("satellite_watch", entity_id=satellite)
        wakes = times_played(snd_file_pcm(out), "wake")
        mic.open(1)
        await _said_and_heard(mic, 1, len(request) / MIC_BYTES_PER_SECOND + 4.0)
        woke = times_played(snd_file_pcm(out), "wake") - wakes
        assert woke == 0, f"woke {woke} times while muted"

        # Unmuted: HA connects again (the new connection replaces the old one) and a whole
        # turn runs; `idle` after `responding` comes only from the satellite's `played`.
        await ha.call("call_service", domain="switch", service="turn_off", data={"entity_id": mute})
        mic.open(2)
        states = await ha.call(
            "satellite_wait",
            entity_id=satellite,
            sequence=["listening", "processing", "responding", "idle"],
            wait_seconds=150,
            timeout=180,
        )
        assert states["complete"], (states, sat.log()[-4000:], ha.log_tail())
        woke = times_played(snd_file_pcm(out), "wake") - wakes
        assert woke >= 1, woke


async def test_barge_in_through_home_assistant(
    ha: HomeAssistant,
    stt_service: ServiceProcess,
    ha_llm: Llm,
    tts_service: ServiceProcess,
    tmp_path: Path,
    announcing: None,
) -> None:
    await use_our_pipeline(ha, stt_service, ha_llm, tts_service)
    request = speech(WAKE_REQUEST) + silence(1.0)
    mic = GatedMic(tmp_path / "mic", silence(0.5), request, request)
    speaker = TimedSpeaker(tmp_path / "out.raw")
    ha_llm.fake.reply = LONG_ANSWER  # about 25 s of speech
    try:
        async with _satellite_in_ha(
            ha, "--mic-command", mic.command(), "--snd-command", speaker.command(), "--no-sounds"
        ) as (sat, entry):
            satellite = _entity(entry, "assist_satellite")
            await _announce(ha, satellite, "Ready.")  # HA has connected and is heard
            await ha.call("satellite_watch", entity_id=satellite)
            chats = len(ha_llm.fake.chats)
            mic.open(1)
            # HA's long answer plays; after 2 s of it the user says the wake word again.
            await until(lambda: speaker.sounding_for() >= 2.0, 150, sat.log)
            mic.open(2)
            states = await ha.call(
                "satellite_wait",
                entity_id=satellite,
                sequence=["listening", "processing", "responding", "listening", "processing"],
                wait_seconds=120,
                timeout=150,
            )
            assert states["complete"], (states, sat.log()[-4000:], ha.log_tail())
            # The new turn's question reached the model.
            await until(lambda: len(ha_llm.fake.chats) - chats >= 2, 60)
            asked = [chat.user_texts for chat in ha_llm.fake.chats[chats:] if chat.user_texts]
            assert len(asked) >= 2 and "time" in asked[1][-1].lower(), asked

            # On the speaker: the answer went silent soon after the wake word entered the mic
            # (a generous bound for a busy machine; bench/satellite.py measures the target).
            said_at = mic.said_at(2)
            assert said_at is not None
            cut = next(((a, b) for a, b in speaker.spans() if a < said_at < b + 0.5), None)
            assert cut is not None, (said_at, speaker.spans())
            wake_phrase = len(speech("Hey Jarvis")) / MIC_BYTES_PER_SECOND
            assert cut[1] - said_at <= wake_phrase + 1.5, (cut, said_at, wake_phrase)
            assert cut[1] - cut[0] < 15.0, cut  # about 25 s were on their way
    finally:
        ha_llm.fake.reply = memory_reply

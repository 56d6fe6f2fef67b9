"""Our room satellite driven by Home Assistant's wyoming integration, end to end.

HA connects to the satellite (config flow by host and port), sends `run-satellite` and
pings; the satellite hears "Hey Jarvis, ..." in its mic WAV, HA runs the preferred pipeline
on our STT, conversation and TTS services, streams the answer back, and the satellite plays
it (into its --snd-file) and sends `played`, which brings HA's satellite entity back to idle.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.ha.conftest import Llm
from tests.ha.harness import HomeAssistant
from tests.ha.test_ha_pipeline import use_our_pipeline
from tests.satellite.helpers import SatelliteRun, mic_wav
from tests.support.services import ServiceProcess, free_port
from tests.support.waiting import until
from wyoming_core.audio import read_wav
from wyoming_core.client import transcribe

pytestmark = pytest.mark.ha

REQUEST = "Hey Jarvis, remember the word banana."
ANSWER = "Okay, I will remember banana."


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def test_satellite_turn_through_home_assistant(
    ha: HomeAssistant,
    stt_service: ServiceProcess,
    ha_llm: Llm,
    tts_service: ServiceProcess,
    tmp_path: Path,
) -> None:
    await use_our_pipeline(ha, stt_service, ha_llm, tts_service)
    # The mic repeats the request with long silences, so it does not matter how long HA
    # takes to connect (the satellite ignores its mic until `run-satellite`); barge-in is
    # off so that a repeat during the answer cannot interrupt it.
    mic = mic_wav(tmp_path / "mic.wav", 1.0, REQUEST, 12.0)
    snd = tmp_path / "snd.wav"
    port = free_port()
    sat = await SatelliteRun(
        "--uri",
        f"tcp://127.0.0.1:{port}",
        "--name",
        "Kitchen",
        "--area",
        "Kitchen",
        "--mic-file",
        str(mic),
        "--mic-file-loop",
        "--snd-file",
        str(snd),
        "--wake-word",
        "hey_jarvis",
        "--no-barge-in",
        "--no-sounds",
        "--debug",
    ).start()
    entry_id = None
    try:
        await until(lambda: _listening(port), 90, sat.log)
        entry = await ha.call("add_entry", host="127.0.0.1", port=port)
        assert entry["type"] == "create_entry" and entry["title"] == "Kitchen", entry
        entry_id = entry["entry_id"]
        domains = {e["domain"] for e in entry["entities"]}
        assert {"assist_satellite", "binary_sensor", "select", "switch"} <= domains, entry
        satellite = next(e["entity_id"] for e in entry["entities"] if e["domain"] == "assist_satellite")
        await ha.call("satellite_watch", entity_id=satellite)
        chats = len(ha_llm.fake.chats)

        # One whole turn as HA sees it; `idle` after `responding` comes only from `played`.
        states = await ha.call(
            "satellite_wait",
            entity_id=satellite,
            sequence=["listening", "processing", "responding", "idle"],
            wait_seconds=150,
            timeout=180,
        )
        assert states["complete"], (states, sat.log()[-4000:], ha.log_tail())
        # The question HA's pipeline heard reached our model.
        asked = [chat.user_texts[-1] for chat in ha_llm.fake.chats[chats:] if chat.user_texts]
        assert any("banana" in text.lower() for text in asked), asked
        # Pings kept flowing (HA drops a satellite that misses a pong for 5 s and connects
        # again): nothing else can see that HA never had to, so the satellite's log is read.
        log = sat.log()
        assert log.count("asked for audio (run-satellite)") == 1, log[-4000:]
    finally:
        await sat.stop()
        if entry_id is not None:
            await ha.call("remove_entry", entry_id=entry_id)

    # What the satellite played is HA's answer from our TTS, spoken.
    pcm, fmt = read_wav(snd)
    heard = (await transcribe(stt_service.uri, pcm, fmt, language="en", timeout=180)).text.lower()
    assert "remember" in heard and "banana" in heard, heard

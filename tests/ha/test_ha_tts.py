"""Home Assistant's own wyoming integration against our TTS service.

What HA makes of our audio is checked by ear, as it were: our STT service transcribes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ha.harness import HomeAssistant, version_tuple
from tests.support.services import ServiceProcess
from tests.support.wer import wer
from wyoming_core.audio import read_wav
from wyoming_core.client import transcribe

pytestmark = pytest.mark.ha

SENTENCE = "The kitchen lights are now on."


def read_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


async def heard(stt: ServiceProcess, wav_path: str) -> str:
    pcm, fmt = read_wav(Path(wav_path))
    return (await transcribe(stt.uri, pcm, fmt, language="en", timeout=120)).text


async def test_config_flow_adds_tts_entity(ha: HomeAssistant, tts_service: ServiceProcess) -> None:
    entry = await ha.entry(tts_service)
    assert entry["entry_state"] == "loaded", entry
    assert {e["domain"] for e in entry["entities"]} == {"tts"}, entry
    assert entry["entities"][0]["state"] != "unavailable", entry


async def test_tts_wav_through_ha_is_speech(
    ha: HomeAssistant, tts_service: ServiceProcess, stt_service: ServiceProcess
) -> None:
    entity_id = await ha.entity_id(tts_service, "tts")
    # A WAV as it comes from the service (no conversion by HA).
    result = await ha.call("tts", entity_id=entity_id, message=SENTENCE, options={"preferred_format": "wav"})
    assert result["extension"] == "wav", result
    assert (result["rate"], result["width"], result["channels"]) == (22050, 2, 1), result
    assert 0.8 < result["seconds"] < 10, result
    assert wer(SENTENCE, await heard(stt_service, result["path"])) <= 0.2


async def test_tts_converted_by_ha_for_a_satellite_is_speech(
    ha: HomeAssistant, tts_service: ServiceProcess, stt_service: ServiceProcess
) -> None:
    """The format a satellite asks for: HA converts our audio with ffmpeg."""
    entity_id = await ha.entity_id(tts_service, "tts")
    options = {
        "preferred_format": "wav",
        "preferred_sample_rate": 16000,
        "preferred_sample_channels": 1,
        "preferred_sample_bytes": 2,
    }
    result = await ha.call("tts", entity_id=entity_id, message=SENTENCE, options=options)
    assert result["extension"] == "wav" and result["rate"] == 16000, result
    assert wer(SENTENCE, await heard(stt_service, result["path"])) <= 0.2


async def test_tts_default_mp3_for_media_players(ha: HomeAssistant, tts_service: ServiceProcess) -> None:
    entity_id = await ha.entity_id(tts_service, "tts")
    result = await ha.call("tts", entity_id=entity_id, message="Hello from the kitchen.")
    assert result["extension"] == "mp3", result
    data = read_bytes(result["path"])
    # An ID3 tag or an MPEG frame sync: ffmpeg made a real MP3 of a second or so of speech.
    assert data[:3] == b"ID3" or (data[0] == 0xFF and data[1] & 0xE0 == 0xE0), data[:8]
    assert len(data) > 4000, len(data)


async def test_tts_streamed_text_input(
    ha: HomeAssistant, tts_service: ServiceProcess, stt_service: ServiceProcess
) -> None:
    """Text streamed in as an LLM writes it (synthesize-start/chunk/stop; HA 2026.2.3, not 2025.4.4)."""
    if version_tuple(ha.version) < (2026, 2):  # the first tested version that streams
        pytest.skip(f"HA {ha.version}'s wyoming TTS does not stream text input")
    entity_id = await ha.entity_id(tts_service, "tts")
    chunks = ["The kitchen ", "lights are now on. ", "It is twenty ", "degrees inside."]
    # A pause after each chunk, long enough that the first sentence is spoken before the
    # last chunk is even sent, if (and only if) the text really streams through.
    result = await ha.call(
        "tts_stream", entity_id=entity_id, chunks=chunks, delay=2.0, options={"preferred_format": "wav"}
    )
    assert result["supports_streaming_input"] is True, result
    assert result["extension"] == "wav", result
    text = await heard(stt_service, result["path"])
    assert wer("".join(chunks), text) <= 0.2, text
    assert result["audio_before_last_text"], result

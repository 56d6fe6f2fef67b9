"""A full assist pipeline in Home Assistant: our STT -> our conversation service -> our TTS."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ha.conftest import Llm, speech_wav
from tests.ha.harness import HomeAssistant
from tests.support.services import ServiceProcess
from tests.support.wer import wer
from wyoming_core.audio import read_wav
from wyoming_core.client import transcribe

pytestmark = pytest.mark.ha


async def use_our_pipeline(
    ha: HomeAssistant, stt: ServiceProcess, llm: Llm, tts: ServiceProcess
) -> dict[str, object]:
    """Make HA's preferred pipeline (what satellites use) run on our three services."""
    return await ha.call(
        "set_pipeline",
        stt_engine=await ha.entity_id(stt, "stt"),
        conversation_engine=await ha.entity_id(llm.service, "conversation"),
        tts_engine=await ha.entity_id(tts, "tts"),
    )


async def test_pipeline_speech_to_spoken_answer(
    ha: HomeAssistant,
    stt_service: ServiceProcess,
    ha_llm: Llm,
    tts_service: ServiceProcess,
    tmp_path: Path,
) -> None:
    await use_our_pipeline(ha, stt_service, ha_llm, tts_service)
    question = "Remember the word banana."
    result = await ha.call("pipeline", wav=str(speech_wav(tmp_path / "q.wav", question)))
    types = [e["type"] for e in result["events"]]
    assert "error" not in result, result
    # Every stage ran, in order, and the run ended.
    stages = ["run-start", "stt-start", "stt-end", "intent-start", "intent-end", "tts-start", "tts-end"]
    assert [t for t in types if t in stages] == stages, types
    assert types[-1] == "run-end", types
    assert wer(question, result["stt_text"]) <= 0.2, result["stt_text"]
    assert result["speech"] == "Okay, I will remember banana.", result
    # The answer HA fetched from our TTS is that sentence, spoken.
    tts = result["tts"]
    assert tts["extension"] == "wav" and tts["seconds"] > 0.8, tts
    pcm, fmt = read_wav(Path(tts["path"]))
    heard = (await transcribe(stt_service.uri, pcm, fmt, language="en", timeout=120)).text
    assert wer(result["speech"], heard) <= 0.25, heard

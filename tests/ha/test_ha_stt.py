"""Home Assistant's own wyoming integration against our STT service."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ha.conftest import speech_wav
from tests.ha.harness import HomeAssistant
from tests.support.services import ServiceProcess
from tests.support.wer import wer

pytestmark = pytest.mark.ha


async def test_config_flow_adds_stt_entity(ha: HomeAssistant, stt_service: ServiceProcess) -> None:
    entry = await ha.entry(stt_service)
    assert entry["form_step"] == "user"
    assert entry["entry_state"] == "loaded", entry
    stt_entities = [e for e in entry["entities"] if e["domain"] == "stt"]
    assert len(stt_entities) == 1, entry
    # An STT entity is available once set up (its state is the last time it was used).
    assert stt_entities[0]["state"] != "unavailable", entry
    # Only the STT platform: the service advertises nothing else.
    assert {e["domain"] for e in entry["entities"]} == {"stt"}, entry


async def test_stt_transcribes_speech_through_ha(
    ha: HomeAssistant, stt_service: ServiceProcess, tmp_path: Path
) -> None:
    sentence = "Turn on the lights in the kitchen."
    entity_id = await ha.entity_id(stt_service, "stt")
    result = await ha.call("stt", entity_id=entity_id, wav=str(speech_wav(tmp_path / "s.wav", sentence)))
    assert result["result"] == "success", result
    assert "en" in result["supported_languages"], result
    assert wer(sentence, result["text"]) <= 0.2, result


async def test_config_flow_reports_cannot_connect(ha: HomeAssistant) -> None:
    from tests.support.services import free_port

    result = await ha.call("add_entry", host="127.0.0.1", port=free_port())
    assert result["type"] == "form" and result["errors"] == {"base": "cannot_connect"}, result

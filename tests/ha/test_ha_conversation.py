"""Home Assistant's own wyoming integration against our conversation (handle) service."""

from __future__ import annotations

import pytest

from tests.ha.conftest import Llm
from tests.ha.harness import HomeAssistant, version_tuple

pytestmark = pytest.mark.ha


async def test_config_flow_adds_conversation_entity(ha: HomeAssistant, ha_llm: Llm) -> None:
    entry = await ha.entry(ha_llm.service)
    assert entry["entry_state"] == "loaded", entry
    assert {e["domain"] for e in entry["entities"]} == {"conversation"}, entry
    assert entry["entities"][0]["state"] != "unavailable", entry


async def test_conversation_remembers_the_previous_turn(ha: HomeAssistant, ha_llm: Llm) -> None:
    agent_id = await ha.entity_id(ha_llm.service, "conversation")
    first = await ha.call("converse", agent_id=agent_id, text="Remember the word banana.")
    assert first["response_type"] == "action_done", first
    assert first["speech"] == "Okay, I will remember banana.", first
    assert first["conversation_id"], first

    # HA hands the conversation id back to the service: the model sees the first turn.
    second = await ha.call(
        "converse", agent_id=agent_id, text="What was the word?", conversation_id=first["conversation_id"]
    )
    assert second["conversation_id"] == first["conversation_id"], second
    if version_tuple(ha.version) < (2026, 2):  # the first tested version that sends it
        # Answered, but without memory: nothing identifies the conversation to the service.
        assert second["speech"] == "You did not tell me a word.", second
        pytest.xfail(
            f"HA {ha.version} bundles wyoming 1.5.4, whose Transcript.event() drops `context`: "
            "no conversation_id reaches a handle service"
        )
    assert second["speech"] == "The word was banana.", second
    assert ha_llm.fake.chats[-1].user_texts == ["Remember the word banana.", "What was the word?"]

    # A new conversation starts empty.
    other = await ha.call("converse", agent_id=agent_id, text="What was the word?")
    assert other["speech"] == "You did not tell me a word.", other
    assert other["conversation_id"] != first["conversation_id"], other

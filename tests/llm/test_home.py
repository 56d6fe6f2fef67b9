"""Home control without Home Assistant: device commands are refused honestly, and the sentence
matcher tells commands from conversation. (With a real Home Assistant: tests/ha.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llm.test_service import ready, start_llm
from tests.support.fake_ollama import FakeOllama
from tests.support.services import ServiceProcess
from wyoming_core.client import converse, describe
from wyoming_core.ha import ExposedEntity
from wyoming_llm import intents, replies

COMMANDS = [
    "Turn on the kitchen lights.",
    "turn off the bedroom lamp",
    "Switch the garage door off, please.",
    "Set the hallway lights to red.",
    "Turn on the lights.",
]
CONVERSATION = [
    "Hello?",
    "What time is it?",
    "Tell me a joke.",
    "The code word is banana.",
    "Talk to me.",
    "What is the capital of France?",
    "Good morning!",
    "Start over.",
    "Are the lights on?",
    "Is the kitchen light on?",
]


@pytest.fixture(scope="module")
def english() -> intents.LanguageData:
    data = intents.load_language("en-US")
    assert data is not None and data.language == "en"
    return data


@pytest.mark.parametrize("text", COMMANDS)
def test_device_commands_are_recognised_whatever_the_name(english: intents.LanguageData, text: str) -> None:
    assert intents.guess_action(text, english) is not None


@pytest.mark.parametrize("text", CONVERSATION)
def test_conversation_is_not_taken_for_a_command(english: intents.LanguageData, text: str) -> None:
    assert intents.guess_action(text, english) is None


def test_commands_match_the_exposed_names_areas_and_domains(english: intents.LanguageData) -> None:
    home = [
        ExposedEntity(("Kitchen Lights", "Worktop"), "light", "off", ("Kitchen",)),
        ExposedEntity(("Coffee Maker",), "switch", "on", ("Kitchen",)),
    ]
    lists = intents.slot_lists(home)
    on = intents.match("turn on the kitchen lights", english, lists)
    assert on is not None and on.intent == "HassTurnOn" and on.slots["name"] == "Kitchen Lights"
    alias = intents.match("switch off the worktop", english, lists)
    assert alias is not None and alias.intent == "HassTurnOff" and alias.slots["name"] == "Kitchen Lights"
    dim = intents.match("set the kitchen lights to 40 percent", english, lists)
    assert dim is not None and dim.intent == "HassLightSet" and dim.slots["brightness"] == 40
    asked = intents.match("is the coffee maker on", english, lists)
    assert asked is not None and asked.intent == "HassGetState" and asked.slots["state"] == "on"
    area = intents.match("turn off the lights in the kitchen", english, lists)
    assert area is not None and area.slots == {"area": "Kitchen", "domain": "light"}
    assert intents.match("turn on the garage door", english, lists) is None


def test_other_languages_use_their_own_sentences() -> None:
    german = intents.load_language("de")
    assert german is not None
    lists = intents.slot_lists([ExposedEntity(("Küchenlicht",), "light", "off", ("Küche",))])
    command = intents.match("Schalte das Küchenlicht ein", german, lists)
    assert command is not None and command.intent == "HassTurnOn", command
    assert intents.load_language("tlh") is None  # Klingon: no sentences, everything to the model


async def test_without_home_assistant_device_commands_are_refused_and_never_claimed(
    tmp_path: Path, service_factory: list[ServiceProcess]
) -> None:
    # The reply a small model really gave to this with no tool at all.
    async with FakeOllama(reply="The kitchen lights have been turned on.") as fake:
        service = start_llm(fake.url, tmp_path)
        service_factory.append(service)
        await ready(service)
        info = await describe(service.uri)
        assert info.handle[0].supports_home_control is False

        reply = await converse(service.uri, "Turn on the kitchen lights.", "no-home")
        assert not reply.handled and reply.text == replies.NOT_CONNECTED, reply
        assert fake.chats == [], "a device command with no home connection reached the model"

        # A phrasing no sentence covers reaches the model, which is told it cannot act...
        other = await converse(service.uri, "Could you make it a bit brighter in here?", "no-home")
        system = fake.chats[-1].messages[0]["content"]
        assert "not connected to Home Assistant" in system, system
        assert fake.chats[-1].tools == []
        # ...and its claim of having done it is not passed on.
        assert "have been turned on" not in other.text, other
        assert not other.handled, other

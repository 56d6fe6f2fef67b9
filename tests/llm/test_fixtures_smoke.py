"""The shared fixtures other packages use: the fake Ollama and the session conversation service."""

from __future__ import annotations

import ollama

from tests.support.fake_ollama import DEFAULT_REPLY, FakeOllama
from tests.support.services import ServiceProcess
from wyoming_core.client import converse


async def test_llm_service_fixture_answers(llm_service: ServiceProcess) -> None:
    reply = await converse(llm_service.uri, "Tell me something.", "fixture-smoke")
    # The fake model's answer (not one of the service's own), streamed sentence by sentence:
    # other packages' tests rely on a two-sentence answer coming from the model.
    assert reply.handled and reply.text == DEFAULT_REPLY, reply
    assert [chunk.strip() for chunk in reply.chunks] == [
        "This is the fake model speaking.",
        "How can I help you today?",
    ], reply.chunks


async def test_fake_ollama_fixture_answers_and_records(fake_ollama: FakeOllama) -> None:
    client = ollama.AsyncClient(host=fake_ollama.url)
    answer = await client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert answer.message.content == DEFAULT_REPLY
    chat = fake_ollama.chats[-1]
    assert chat.user_texts == ["hi"] and chat.completed, chat

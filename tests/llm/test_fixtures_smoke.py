"""The shared fixtures other packages use: the fake Ollama and the session conversation service."""

from __future__ import annotations

from tests.support.fake_ollama import FakeOllama
from tests.support.services import ServiceProcess
from wyoming_core.client import converse


async def test_llm_service_fixture_answers(llm_service: ServiceProcess) -> None:
    reply = await converse(llm_service.uri, "Hello?", "fixture-smoke")
    assert reply.handled and reply.text and reply.chunks


async def test_fake_ollama_fixture_is_running(fake_ollama: FakeOllama) -> None:
    assert fake_ollama.url.startswith("http://127.0.0.1:")

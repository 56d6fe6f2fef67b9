"""Shared fixtures: the project's real services as subprocesses on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.fake_ollama import FakeOllama
from tests.support.services import ServiceProcess


@pytest.fixture(scope="session")
def stt_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stt-data")


@pytest.fixture(scope="session")
async def stt_service(stt_data_dir: Path) -> AsyncIterator[ServiceProcess]:
    """The STT service on the bundled base model, shared by the whole session."""
    service = ServiceProcess(
        "wyoming_stt", "--model", "base", "--data-dir", str(stt_data_dir), "--language", "en", "--debug"
    ).start()
    try:
        service.wait_listening()
        await service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture
def service_factory() -> Iterator[list[ServiceProcess]]:
    """Per-test processes, stopped at teardown: append to the list you get."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
async def tts_service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceProcess]:
    """The TTS service on the bundled en_US-joe-medium voice, shared by the whole session."""
    data_dir = tmp_path_factory.mktemp("tts-data")
    service = ServiceProcess("wyoming_tts", "--data-dir", str(data_dir), "--debug").start()
    try:
        service.wait_listening()
        await service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture
async def fake_ollama() -> AsyncIterator[FakeOllama]:
    """An in-process fake Ollama (tests/support/fake_ollama.py); set its knobs per test, `.url` to use it."""
    async with FakeOllama() as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_ollama_process() -> Iterator[ServiceProcess]:
    """A fake Ollama as a process for the whole session; its URL is f"http://127.0.0.1:{proc.port}"."""
    service = ServiceProcess("tests.support.fake_ollama", "--tokens-per-second", "100").start()
    try:
        service.wait_listening()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
async def llm_service(
    fake_ollama_process: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServiceProcess]:
    """The conversation service on the session's fake Ollama, model warm, ready to answer."""
    data_dir = tmp_path_factory.mktemp("llm-data")
    service = ServiceProcess(
        "wyoming_llm",
        "--ollama-url",
        f"http://127.0.0.1:{fake_ollama_process.port}",
        "--data-dir",
        str(data_dir),
        "--debug",
    ).start()
    try:
        service.wait_listening()
        await service.wait_ready(marker="is loaded and warm")
        yield service
    finally:
        service.stop()

"""Shared fixtures: the project's real services as subprocesses on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

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
        await service.wait_ready(marker="Voice en_US-joe-medium is ready")
        yield service
    finally:
        service.stop()

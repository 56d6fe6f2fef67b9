"""Fault drill: services crash and come back while clients (and a satellite) are using them."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from wyoming.event import Event

from tests.robustness.checks import PROMPT
from tests.robustness.targets import BUILDERS, Target
from wyoming_core.client import Connection, ServiceUnavailable, VoiceError, converse, describe

SERVICES = ["stt", "tts", "llm"]


@pytest.fixture(params=SERVICES)
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    builder = BUILDERS[request.param]
    reason = builder.missing()
    if reason is not None:
        pytest.skip(reason)
    started = await builder.start(tmp_path)
    try:
        yield started
    finally:
        await started.stop()


async def test_crash_mid_request_is_a_clear_error_and_the_next_request_after_restart_works(
    target: Target,
) -> None:
    await target.work()
    # A request in flight when the service dies: the client hears about it at once.
    conn = Connection(target.uri, timeout=60)
    await conn.open()
    try:
        for event_type, data, payload in target.stream_start:
            await conn.send(Event(event_type, data or {}, payload or None))
        assert target.service.proc is not None
        target.service.proc.kill()
        started = time.monotonic()
        with pytest.raises(VoiceError):
            while True:  # events already on their way may still arrive; then the end
                await conn.receive(timeout=PROMPT)
        assert time.monotonic() - started < PROMPT
    finally:
        await conn.close()
    # While it is down: a clear "unavailable", not a hang.
    target.service.proc.wait()
    with pytest.raises(ServiceUnavailable):
        await describe(target.uri, timeout=PROMPT)
    await target.restart(crash=False)
    # Back on the same address: the client's next request just works.
    await target.work()


async def test_conversation_memory_survives_a_restart_of_the_llm_service(tmp_path: Path) -> None:
    reason = BUILDERS["llm"].missing()
    if reason is not None:
        pytest.skip(reason)
    from tests.support.fake_ollama import echo_reply

    target = await BUILDERS["llm"].start(tmp_path)
    fake = target.extras["fake_ollama"]
    fake.reply = echo_reply
    try:
        first = await converse(target.uri, "My name is Ada.", "drill-1", timeout=60)
        assert first.handled
        await target.restart(crash=True)  # SIGKILL: no chance to flush anything at shutdown
        second = await converse(target.uri, "What is my name?", "drill-1", timeout=60)
        assert second.handled and "What is my name" in second.text
        sent = [m.get("content", "") for m in fake.chats[-1].messages]
        assert any("My name is Ada" in text for text in sent), sent
    finally:
        await target.stop()


async def test_satellite_recovers_by_the_next_turn_after_every_service_restarts(
    tmp_path: Path,
) -> None:
    for name in ("stt", "tts", "llm", "satellite"):
        reason = BUILDERS[name].missing()
        if reason is not None:
            pytest.skip(reason)
    from tests.satellite.helpers import WAKE_REQUEST, SatelliteRun, silence, speech

    stt = await BUILDERS["stt"].start(tmp_path / "stt")
    tts = await BUILDERS["tts"].start(tmp_path / "tts")
    llm = await BUILDERS["llm"].start(tmp_path / "llm")
    services: list[Target] = [stt, tts, llm]
    sat: SatelliteRun | None = None
    try:
        # Two turns of one conversation; the second is spoken once everything has restarted,
        # however long that takes on a busy machine (the mic waits for the gate file).
        first, second, gate = tmp_path / "first.raw", tmp_path / "second.raw", tmp_path / "go"
        first.write_bytes(silence(1.0) + speech(WAKE_REQUEST) + silence(1.0))
        second.write_bytes(speech(WAKE_REQUEST) + silence(3.0))
        mic = f"{sys.executable} -m tests.satellite.gated_mic {first} {second} {gate}"
        sat = await SatelliteRun(
            "--mic-command",
            mic,
            "--snd-file",
            str(tmp_path / "out.wav"),
            "--wake-word",
            "hey_jarvis",
            "--stt-uri",
            stt.uri,
            "--tts-uri",
            tts.uri,
            "--handle-uri",
            llm.uri,
            "--follow-up",
            "0",
            "--exit-after-turns",
            "2",
        ).start()
        await sat.wait_for(r"waiting for the wake word \(turn over\)", timeout=60)
        await asyncio.gather(*(service.restart(crash=True) for service in services))
        gate.touch()
        assert await sat.wait_exit(120) == 0, sat.log()
        log = sat.log()
        assert log.count("(turn over)") == 2, log
        assert "turn failed" not in log, log
    finally:
        if sat is not None:
            await sat.stop()
        for service in services:
            await service.stop()

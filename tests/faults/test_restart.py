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
from tests.support.waiting import until
from wyoming_core.audio import AudioFormat
from wyoming_core.client import Connection, ServiceUnavailable, VoiceError, converse, describe, transcribe

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
    from tests.satellite.helpers import (
        WAKE_REQUEST,
        SatelliteRun,
        TimedSpeaker,
        played_and_quiet,
        silence,
        speech,
    )
    from tests.support.wer import wer

    stt = await BUILDERS["stt"].start(tmp_path / "stt")
    tts = await BUILDERS["tts"].start(tmp_path / "tts")
    llm = await BUILDERS["llm"].start(tmp_path / "llm")
    fake = llm.extras["fake_ollama"]
    services: list[Target] = [stt, tts, llm]
    sat: SatelliteRun | None = None
    try:
        # Two turns of one conversation; the second is spoken once everything has restarted,
        # however long that takes on a busy machine (the mic waits for the gate file).
        first, second, gate = tmp_path / "first.raw", tmp_path / "second.raw", tmp_path / "go"
        first.write_bytes(silence(1.0) + speech(WAKE_REQUEST) + silence(1.0))
        second.write_bytes(speech(WAKE_REQUEST) + silence(3.0))
        mic = f"{sys.executable} -m tests.satellite.gated_mic {first} {second} {gate}"
        speaker = TimedSpeaker(tmp_path / "out.raw")
        sat = await SatelliteRun(
            "--mic-command",
            mic,
            "--snd-command",
            speaker.command(),
            "--wake-word",
            "hey_jarvis",
            "--stt-uri",
            stt.uri,
            "--tts-uri",
            tts.uri,
            "--handle-uri",
            llm.uri,
            "--no-sounds",
            "--follow-up",
            "0",
            "--exit-after-turns",
            "2",
        ).start()
        # The first answer has been played; then every service crashes and comes back.
        await until(lambda: played_and_quiet(speaker.pcm()) >= 1, 120, sat.log)
        await asyncio.gather(*(service.restart(crash=True) for service in services))
        restarted_at = time.monotonic()
        gate.touch()
        assert await sat.wait_exit(120) == 0, sat.log()
        # The second question reached the model after the restarts, and was answered in full...
        asked = [chat for chat in fake.chats if chat.user_texts]
        assert len(asked) == 2, [chat.user_texts for chat in asked]
        assert asked[1].received_at > restarted_at and asked[1].completed, asked[1]
        assert "time" in asked[1].user_texts[-1].lower(), asked[1].user_texts
        # ...and the restarted TTS spoke the answer: the second stretch of sound, heard back.
        spans = speaker.spans()
        assert len(spans) == 2 and spans[1][0] > restarted_at, (spans, restarted_at)
        audio = speaker.audio(*spans[1]) + b"\0" * 2 * speaker.rate  # a second of silence after it
        heard = await transcribe(stt.uri, audio, AudioFormat(speaker.rate, 2, 1))
        assert wer(asked[1].text_sent, heard.text) <= 0.25, (asked[1].text_sent, heard.text)
    finally:
        if sat is not None:
            await sat.stop()
        for service in services:
            await service.stop()

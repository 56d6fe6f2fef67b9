"""TTS work for clients that stopped listening or left (issue 13, item 4), on a real TTS process.

The issue: 1,500 queued 9,000-character requests on one unread connection took RSS from 194 to
386 MB, the connection outlived the idle timeout 5x, and after the client closed, synthesis
went on for over 3 minutes. Each case below reproduces one part of that, bounded in count and
time, and checks what an operator sees: the connection ends, the CPU goes quiet, memory returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.robustness.checks import PROMPT, RSS_MARGIN_MB, vanish
from tests.robustness.peers import settled
from tests.support.raw import RawClient
from tests.support.services import ServiceProcess
from wyoming_core.protocol import ProtocolError

WRITE_TIMEOUT = 3.0
IDLE_TIMEOUT = 4.0
# Run-on text without commas: the splitter cuts it into 400-character parts, each about two
# seconds of synthesis on one core here (a long model run to interrupt).
RUN_ON = "the quick brown fox jumps over the lazy dog and keeps running along the river "
LONG_TEXT = (RUN_ON * 120)[:9000]


def cpu_seconds(service: ServiceProcess) -> float:
    assert service.proc is not None
    fields = Path(f"/proc/{service.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def quiet_after(service: ServiceProcess, timeout: float = 120.0) -> float:
    """CPU seconds the service uses from now until it is quiet (under 5 % of a core for 1 s)."""
    start = last = cpu_seconds(service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = cpu_seconds(service)
        if now - last < 0.05:
            return now - start
        last = now
    raise AssertionError(f"the service was still busy after {timeout:g} s")


@pytest.fixture(scope="module")
async def tts(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess(
        "wyoming_tts",
        "--data-dir",
        str(tmp_path_factory.mktemp("tts-departed")),
        "--write-timeout",
        str(WRITE_TIMEOUT),
        "--idle-timeout",
        str(IDLE_TIMEOUT),
    ).start()
    try:
        service.wait_listening(timeout=120)
        await service.wait_ready()
        yield service
    finally:
        service.stop()


def _synthesize(text: str) -> bytes:
    body = json.dumps({"text": text}).encode()
    return json.dumps({"type": "synthesize", "data_length": len(body)}).encode() + b"\n" + body


async def _read_to_the_end(client: RawClient, timeout: float) -> list[str] | None:
    """Event types until the service ends the connection; None if it is still open at `timeout`."""
    deadline = time.monotonic() + timeout
    types: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            event = await client.receive(timeout=remaining)
        except TimeoutError:
            return None
        except (ConnectionError, ProtocolError):  # reset, or cut in the middle of an event
            return types
        if event is None:
            return types
        types.append(event.type)


async def test_a_flood_of_requests_on_an_unread_connection_is_cut_off(tts: ServiceProcess) -> None:
    before = await settled(tts.rss_mb)
    client = await RawClient.connect(tts.port)
    with contextlib.suppress(ConnectionError):
        for _ in range(1500):  # never reading an answer
            await client.send_bytes(_synthesize(LONG_TEXT))
    # Refused past the queue cap (the `error` event may be lost in the reset of a client
    # that is still sending), and the connection ends.
    types = await _read_to_the_end(client, timeout=60)
    assert types is not None, "the connection is still open"
    assert "audio-stop" not in types, types
    cpu = await quiet_after(tts)
    after = await settled(tts.rss_mb)
    assert after <= before + RSS_MARGIN_MB, f"RSS {before:.0f} -> {after:.0f} MB"
    # The queued replies were dropped: at most a few parts were synthesized (each ~2 s).
    assert cpu < 10, f"{cpu:.1f} CPU seconds spent after the connection ended"


async def test_a_client_that_stops_reading_is_closed_after_the_write_timeout(tts: ServiceProcess) -> None:
    client = await RawClient.connect(tts.port)
    await client.send_bytes(_synthesize(LONG_TEXT))
    # Not reading: the reply fills the socket buffers, then waits (the CPU goes quiet). The idle
    # timeout never ends it (the service is still answering); the write timeout does.
    await quiet_after(tts)
    await asyncio.sleep(WRITE_TIMEOUT + 2)
    # Reading now gets what was already in the buffers, then the end: not the rest of the reply.
    types = await _read_to_the_end(client, timeout=60)
    assert types is not None, "the connection outlived the write timeout"
    assert "audio-chunk" in types and "audio-stop" not in types, sorted(set(types))


async def test_work_stops_when_the_client_leaves(tts: ServiceProcess) -> None:
    """Eight long replies queued, the first one speaking, then the client vanishes."""
    client = await RawClient.connect(tts.port)
    for _ in range(8):
        await client.send_bytes(_synthesize(LONG_TEXT))
    events = await client.receive_until("audio-chunk", timeout=60)
    assert all(e.type != "error" for e in events), events
    await vanish(client)
    cpu = await quiet_after(tts)
    # Without cancelling, each queued reply would synthesize at least one 400-character part
    # (~2 s each) and the part under way would finish: 15 s or more.
    assert cpu < 5, f"{cpu:.1f} CPU seconds spent after the client left"
    # And the service is ready for the next client at once.
    follow = await RawClient.connect(tts.port)
    await follow.send("synthesize", {"text": "Okay."})
    events = await follow.receive_until("audio-stop", timeout=PROMPT * 6)
    assert any(e.type == "audio-chunk" for e in events), events
    await follow.close()

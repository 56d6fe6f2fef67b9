"""The shared core's hardened reading, over real TCP, with a minimal service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping

import pytest
from wyoming.event import Event
from wyoming.info import Attribution, Info, IntentProgram

from tests.support.raw import RawClient
from wyoming_core import protocol
from wyoming_core.client import describe
from wyoming_core.handler import ConnectionHandler, RequestError, Route
from wyoming_core.protocol import Limits
from wyoming_core.server import RunningServer, ServerSettings

LIMITS = Limits(max_line_bytes=4096, max_data_bytes=8192, max_payload_bytes=16384, idle_timeout=1.0)


class EchoHandler(ConnectionHandler):
    def info(self) -> Info:
        attribution = Attribution(name="test", url="http://localhost")
        return Info(intent=[IntentProgram("echo", attribution, True, None, None, models=[])])

    def routes(self) -> Mapping[str, Route]:
        return {"echo": self._echo, "refuse": self._refuse}

    async def _echo(self, event: Event) -> bool:
        await self.write_event(Event("echoed", event.data, event.payload))
        return True

    async def _refuse(self, _event: Event) -> bool:
        raise RequestError("refused", "I refuse")


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    running = RunningServer(ServerSettings("tcp://127.0.0.1:0", LIMITS), EchoHandler)
    await running.start()
    yield running
    await running.stop()


async def _client(server: RunningServer) -> RawClient:
    assert server.port is not None
    return await RawClient.connect(server.port)


async def test_valid_event_roundtrip(server: RunningServer) -> None:
    client = await _client(server)
    await client.send("echo", {"a": 1}, b"xyz")
    event = await client.receive()
    assert event is not None and event.type == "echoed"
    assert event.data == {"a": 1} and event.payload == b"xyz"
    await client.close()


BAD_INPUTS = [
    (b"{not json\n", protocol.INVALID_JSON),
    (b"\xff\xfe\xfa\n", protocol.INVALID_JSON),
    (b"[1,2]\n", protocol.INVALID_JSON),
    (b'{"data": {}}\n', protocol.MISSING_TYPE),
    (b'{"type": ""}\n', protocol.MISSING_TYPE),
    (b'{"type": "echo", "data_length": -1}\n', protocol.INVALID_LENGTH),
    (b'{"type": "echo", "payload_length": "12"}\n', protocol.INVALID_LENGTH),
    (b'{"type": "echo", "payload_length": 1.5}\n', protocol.INVALID_LENGTH),
    (b'{"type": "echo", "payload_length": 1099511627776}\n', protocol.PAYLOAD_TOO_LARGE),
    (b'{"type": "echo", "data_length": 1099511627776}\n', protocol.DATA_TOO_LARGE),
    (b'{"type": "echo", "data_length": 3}\n[1]', protocol.INVALID_JSON),
    (b'{"type": "x' + b"a" * 10000 + b'"}\n', protocol.LINE_TOO_LONG),
]


@pytest.mark.parametrize(("raw", "code"), BAD_INPUTS)
async def test_bad_input_gets_error_and_close(server: RunningServer, raw: bytes, code: str) -> None:
    client = await _client(server)
    await client.send_bytes(raw)
    event = await client.receive(timeout=2)
    assert event is not None and event.type == "error", event
    assert event.data["code"] == code
    assert event.data["text"]
    assert await client.closed(timeout=2)
    # The server is still up for everybody else.
    info = await describe(f"tcp://127.0.0.1:{server.port}")
    assert info.intent[0].name == "echo"


async def test_huge_line_is_refused_without_buffering_it(server: RunningServer) -> None:
    client = await _client(server)
    answer = asyncio.create_task(client.receive(timeout=30))
    # A line that never ends: refused and cut once past the 4 KiB limit, not read on and held
    # (a server that buffered it would take all 64 MiB and wait for the newline).
    sent = await client.send_endless_line(cap=64 * 2**20)
    event = await answer
    assert event is not None and event.data["code"] == protocol.LINE_TOO_LONG, event
    # Beyond the limit, only what the socket buffers hold got out (about 0.5 MiB).
    assert sent < 4 * 2**20, f"the server took {sent} bytes of one header line"


async def test_request_error_is_sent_with_code(server: RunningServer) -> None:
    client = await _client(server)
    await client.send("refuse")
    event = await client.receive()
    assert event is not None and event.type == "error" and event.data["code"] == "refused"
    assert await client.closed()


async def test_unknown_events_are_ignored_connection_stays_usable(server: RunningServer) -> None:
    client = await _client(server)
    await client.send("no-such-event", {"x": 1})
    await client.send("describe")
    event = await client.receive()
    assert event is not None and event.type == "info"
    await client.close()


async def test_idle_connection_is_closed(server: RunningServer) -> None:
    client = await _client(server)
    event = await client.receive(timeout=3)
    assert event is not None and event.data["code"] == protocol.IDLE_TIMEOUT
    assert await client.closed()


async def test_half_sent_payload_times_out(server: RunningServer) -> None:
    client = await _client(server)
    await client.send_bytes(json.dumps({"type": "echo", "payload_length": 100}).encode() + b"\nabc")
    event = await client.receive(timeout=3)
    assert event is not None and event.data["code"] == protocol.IDLE_TIMEOUT


async def test_many_bad_clients_do_not_disturb_a_good_one(server: RunningServer) -> None:
    async def abuse() -> None:
        client = await _client(server)
        await client.send_bytes(b"garbage\n")
        await client.closed()

    await asyncio.gather(*(abuse() for _ in range(20)))
    good = await _client(server)
    await good.send("echo", {"ok": True})
    event = await good.receive()
    assert event is not None and event.data == {"ok": True}
    await good.close()

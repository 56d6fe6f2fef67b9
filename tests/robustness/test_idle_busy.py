"""The idle timeout closes idle connections, not ones the service is still answering (in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import pytest
from wyoming.event import Event
from wyoming.info import Attribution, Info, IntentProgram

from tests.support.raw import RawClient
from wyoming_core import protocol
from wyoming_core.handler import ConnectionHandler, Route
from wyoming_core.protocol import Limits
from wyoming_core.server import RunningServer, ServerSettings

IDLE = 0.5


class SlowHandler(ConnectionHandler):
    """`stream`: replies every IDLE/2 for 3 idle periods; `queued`: silent for 3 idle periods first."""

    working = False

    def info(self) -> Info:
        attribution = Attribution(name="test", url="http://localhost")
        return Info(intent=[IntentProgram("slow", attribution, True, None, None, models=[])])

    def routes(self) -> Mapping[str, Route]:
        return {"stream": self._stream, "queued": self._queued}

    def busy(self) -> bool:
        return self.working or super().busy()

    async def _stream(self, _event: Event) -> bool:
        # In the background, as services that stream replies do: the reader goes on reading.
        async def reply() -> None:
            for n in range(6):
                await asyncio.sleep(IDLE / 2)
                await self.write_event(Event("piece", {"n": n}))
            await self.write_event(Event("done"))

        asyncio.get_running_loop().create_task(reply())
        return True

    async def _queued(self, _event: Event) -> bool:
        async def reply() -> None:
            self.working = True
            await asyncio.sleep(IDLE * 3)
            self.working = False
            await self.write_event(Event("done"))

        asyncio.get_running_loop().create_task(reply())
        return True


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    running = RunningServer(ServerSettings("tcp://127.0.0.1:0", Limits(idle_timeout=IDLE)), SlowHandler)
    await running.start()
    yield running
    await running.stop()


@pytest.mark.parametrize("request_type", ["stream", "queued"])
async def test_a_reply_longer_than_the_idle_timeout_is_not_cut_off(
    server: RunningServer, request_type: str
) -> None:
    assert server.port is not None
    client = await RawClient.connect(server.port)
    await client.send(request_type)
    events = await client.receive_until("done", timeout=IDLE * 10)
    assert all(e.type != "error" for e in events), events
    # Once answered, the connection is idle again and is closed as such.
    event = await client.receive(timeout=IDLE * 10)
    assert event is not None and event.data["code"] == protocol.IDLE_TIMEOUT
    assert await client.closed()

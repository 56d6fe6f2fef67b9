"""A client that drives the satellite the way Home Assistant's wyoming satellite driver does.

It connects, sends `run-satellite` and `describe`, and pings 2 s after every pong (failing if
a pong takes over 5 s); the test reads the satellite's events from `events` and answers a
`run-pipeline` with `transcript`, `synthesize` and reply audio, as HA's pipeline would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event, async_write_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.satellite import RunSatellite

from wyoming_core.client import CLIENT_LIMITS
from wyoming_core.protocol import read_event

PING_DELAY = 2.0
PONG_TIMEOUT = 5.0


@dataclass
class FakeHa:
    host: str
    port: int
    run_satellite: bool = True
    events: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    pong_delays: list[float] = field(default_factory=list)
    received: list[str] = field(default_factory=list)  # every event type, in order
    ping_failures: int = 0
    info: Info | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _ping_sent: float = 0.0
    _pong: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self) -> FakeHa:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._tasks.append(asyncio.create_task(self._read()))
        if self.run_satellite:
            await self.send(RunSatellite().event())
        await self.send(Describe().event())
        self._tasks.append(asyncio.create_task(self._ping_loop()))
        return self

    async def send(self, event: Event) -> None:
        assert self._writer is not None
        await async_write_event(event, self._writer)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._writer is not None:
            self._writer.close()

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while (event := await read_event(self._reader, CLIENT_LIMITS)) is not None:
                self.received.append(event.type)
                if Pong.is_type(event.type):
                    self.pong_delays.append(time.monotonic() - self._ping_sent)
                    self._pong.set()
                elif Info.is_type(event.type):
                    self.info = Info.from_event(event)
                else:
                    await self.events.put(event)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            await self.events.put(None)

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(PING_DELAY)
            self._pong.clear()
            self._ping_sent = time.monotonic()
            try:
                await self.send(Ping().event())
            except (ConnectionError, OSError):
                return
            try:
                await asyncio.wait_for(self._pong.wait(), PONG_TIMEOUT)
            except TimeoutError:
                self.ping_failures += 1

    async def next(
        self, *types: str, timeout: float = 30.0, skip: tuple[str, ...] = ("audio-chunk",)
    ) -> Event:
        """The next event of one of `types`; events in `skip` are dropped, others fail the test."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {types} within {timeout} s")
            try:
                event = await asyncio.wait_for(self.events.get(), remaining)
            except TimeoutError:
                raise AssertionError(f"no {types} within {timeout} s") from None
            if event is None:
                raise AssertionError(f"connection closed while waiting for {types}")
            if event.type in types:
                return event
            if event.type not in skip:
                raise AssertionError(f"unexpected {event.type} while waiting for {types}")

    async def collect_audio(self, timeout: float = 30.0) -> bytes:
        """Mic audio after `audio-start`, until the satellite's `audio-stop`."""
        parts: list[bytes] = []
        deadline = time.monotonic() + timeout
        while True:
            event = await asyncio.wait_for(self.events.get(), max(0.1, deadline - time.monotonic()))
            if event is None:
                raise AssertionError("connection closed while streaming")
            if AudioChunk.is_type(event.type):
                parts.append(AudioChunk.from_event(event).audio)
            elif AudioStop.is_type(event.type):
                return b"".join(parts)

    async def play(self, pcm: bytes, rate: int = 22050) -> None:
        """Send reply audio the way HA streams TTS: as fast as it can, 1024-sample chunks."""
        await self.send(AudioStart(rate=rate, width=2, channels=1, timestamp=0).event())
        for start in range(0, len(pcm), 2048):
            await self.send(
                AudioChunk(rate=rate, width=2, channels=1, audio=pcm[start : start + 2048]).event()
            )
        await self.send(AudioStop().event())

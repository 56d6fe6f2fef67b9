"""Raw-socket access for protocol abuse tests: send arbitrary bytes, read what comes back."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from wyoming.event import Event

from wyoming_core.client import CLIENT_LIMITS
from wyoming_core.protocol import read_event


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**22)
        return cls(reader, writer)

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_endless_line(self, cap: int, piece: int = 64 * 1024) -> int:
        """Send a header line that never ends, `piece` bytes at a time, until the peer cuts the
        connection or `cap` bytes went out; return how many did. A peer that reads only up to
        its line limit cuts it after that limit plus what the kernel's socket buffers hold."""
        sock = self.writer.get_extra_info("socket")
        # A fixed small send buffer (no autotuning): what got out is what the peer took in.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, piece)
        block = b"x" * piece
        sent = 0
        try:
            await self.send_bytes(b'{"type": "')
            while sent < cap:
                await self.send_bytes(block)
                sent += piece
        except ConnectionError:
            pass
        return sent

    async def send(self, event_type: str, data: dict[str, Any] | None = None, payload: bytes = b"") -> None:
        header: dict[str, Any] = {"type": event_type}
        body = json.dumps(data).encode() if data else b""
        if body:
            header["data_length"] = len(body)
        if payload:
            header["payload_length"] = len(payload)
        await self.send_bytes(json.dumps(header).encode() + b"\n" + body + payload)

    async def receive(self, timeout: float = 10.0) -> Event | None:
        return await asyncio.wait_for(read_event(self.reader, CLIENT_LIMITS), timeout)

    async def receive_until(self, event_type: str, timeout: float = 30.0) -> list[Event]:
        events: list[Event] = []
        while True:
            event = await self.receive(timeout)
            assert event is not None, f"connection closed before {event_type}: {events}"
            events.append(event)
            if event.type == event_type:
                return events

    async def closed(self, timeout: float = 5.0) -> bool:
        """True if the server closed the connection (EOF) within `timeout`."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except (TimeoutError, ConnectionError):
            return False
        while data:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
            except (TimeoutError, ConnectionError):
                return False
        return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

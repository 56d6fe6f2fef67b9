"""Clients from different addresses, all on loopback: Linux routes the whole of 127.0.0.0/8 locally,
so 127.0.0.2, 127.0.0.3, ... are distinct peers to a service without leaving the machine."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from tests.support.raw import RawClient


def address(n: int) -> str:
    """The n-th loopback source address (n = 1 is 127.0.0.1)."""
    return f"127.0.0.{n}"


async def connect_from(port: int, source: str) -> RawClient:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0), limit=2**22)
    return RawClient(reader, writer)


async def close_all(clients: list[RawClient]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            client.writer.transport.abort()


async def wait_for(
    condition: Callable[[], Awaitable[bool] | bool], timeout: float, what: str, every: float = 0.2
) -> None:
    """Poll until `condition` holds (generous deadlines: the machine is shared)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(every)


async def settled(sample: Callable[[], float], timeout: float = 30.0, tolerance: float = 2.0) -> float:
    """A value (RSS) once two samples a second apart agree within `tolerance`, or at the deadline."""
    deadline = time.monotonic() + timeout
    last = sample()
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = sample()
        if abs(now - last) <= tolerance:
            return now
        last = now
    return last

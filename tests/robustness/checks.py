"""What every robustness case checks afterwards, and small raw-socket helpers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time

import pytest
from wyoming.event import Event

from tests.robustness.targets import RawEvent, Target
from tests.support.raw import RawClient
from wyoming_core.client import describe

# "At once", on a machine shared with other test runs: generous, but far below any timeout.
PROMPT = 5.0
# RSS may settle a little higher than before a burst (allocator caches), never much.
RSS_MARGIN_MB = 50.0
# Signs that a service hit an exception it did not expect (an internal-error, a crash).
_BAD_LOG_LINES = ("Traceback", "Unexpected error", "internal-error")


def mark_known_bug(request: pytest.FixtureRequest, target: Target) -> None:
    """xfail (not strict) a case that fails because of a known bug in a service owned by others."""
    reason = target.known_bugs.get(request.node.originalname)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))


async def connect(target: Target) -> RawClient:
    return await RawClient.connect(target.service.port)


async def send_events(client: RawClient, events: list[RawEvent]) -> None:
    for event_type, data, payload in events:
        await client.send(event_type, data, payload)


async def vanish(client: RawClient) -> None:
    """Disappear without a goodbye: an RST instead of a FIN, as a crashed or unplugged client."""
    sock = client.writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.writer.transport.abort()


async def expect_error(client: RawClient, codes: set[str] | None, timeout: float = PROMPT) -> Event:
    """The next events end with an `error` (with a code) soon; return it."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no error event within {timeout:g} s"
        try:
            event = await client.receive(timeout=remaining)
        except TimeoutError:
            raise AssertionError(f"no error event within {timeout:g} s") from None
        assert event is not None, "connection closed without an error event"
        if event.type == "error":
            code = event.data.get("code")
            assert code, f"error without a code: {event.data}"
            assert event.data.get("text"), f"error without a text: {event.data}"
            if codes is not None:
                assert code in codes, f"error code {code!r}, expected one of {sorted(codes)}: {event.data}"
            assert code != "internal-error", event.data
            return event


async def assert_serving(target: Target) -> None:
    """The process is alive and answers `describe` for a new client, at once."""
    assert target.service.alive(), f"{target.name} died:\n{target.service.log()[-3000:]}"
    await describe(target.uri, timeout=PROMPT)


def log_mark(target: Target) -> int:
    return len(target.service.log())


def assert_clean_log(target: Target, mark: int) -> None:
    new = target.service.log()[mark:]
    for bad in _BAD_LOG_LINES:
        assert bad not in new, f"{target.name} logged {bad!r}:\n{new[-4000:]}"


def rss_mb(target: Target) -> float:
    return target.service.rss_mb()


async def settled_rss(target: Target, pause: float = 1.5) -> float:
    """RSS after a pause, so finished connections' memory has been released."""
    await asyncio.sleep(pause)
    return rss_mb(target)

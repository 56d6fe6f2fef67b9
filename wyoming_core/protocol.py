"""Hardened Wyoming event reading.

The stock `wyoming.event.async_read_event` trusts the peer: it buffers whatever
`data_length`/`payload_length` claims and swallows malformed input silently.
Here every limit is checked *before* reading, and every violation becomes a
`ProtocolError` carrying a machine-readable code, so the handler can answer
with an `error` event and close cleanly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wyoming.event import Event

from .admission import OVERLOADED, ByteBudget
from .errors import (
    DATA_TOO_LARGE,
    IDLE_TIMEOUT,
    INVALID_JSON,
    INVALID_LENGTH,
    MISSING_TYPE,
    PAYLOAD_TOO_LARGE,
)
from .errors import HEADER_TOO_LARGE as LINE_TOO_LONG
from .errors import TRUNCATED_EVENT as TRUNCATED

# Error codes sent in `error` events (also used by clients to tell causes apart).


@dataclass(frozen=True)
class Limits:
    """Per-connection limits. Defaults fit audio chunks and long texts with room to spare."""

    max_line_bytes: int = 64 * 1024
    max_data_bytes: int = 1024 * 1024
    max_payload_bytes: int = 4 * 1024 * 1024
    # Seconds without a complete event before the connection is closed (None: never).
    idle_timeout: float | None = 300.0
    # Seconds one event may wait to go out to a client that does not read (None: for ever).
    write_timeout: float | None = 30.0


class ProtocolError(Exception):
    """The peer sent something that is not a valid Wyoming event."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _length(header: dict[str, Any], key: str, limit: int, too_large_code: str) -> int:
    value = header.get(key)
    if value is None:
        return 0
    # bool is an int subclass in Python; `true` is not a length.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(INVALID_LENGTH, f"'{key}' must be a non-negative integer, got {value!r}")
    if value > limit:
        raise ProtocolError(too_large_code, f"'{key}' of {value} bytes is over the limit of {limit} bytes")
    return value


def parse_header(line: bytes, limits: Limits) -> tuple[dict[str, Any], int, int]:
    """Validate one header line; return (header, data_length, payload_length)."""
    try:
        header = json.loads(line)
    except (ValueError, UnicodeDecodeError) as err:
        raise ProtocolError(INVALID_JSON, f"Event header is not valid JSON: {err}") from None
    if not isinstance(header, dict):
        raise ProtocolError(INVALID_JSON, "Event header must be a JSON object")
    event_type = header.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise ProtocolError(MISSING_TYPE, "Event header has no 'type'")
    data = header.get("data")
    if data is not None and not isinstance(data, dict):
        raise ProtocolError(INVALID_JSON, "Event 'data' must be a JSON object")
    data_length = _length(header, "data_length", limits.max_data_bytes, DATA_TOO_LARGE)
    payload_length = _length(header, "payload_length", limits.max_payload_bytes, PAYLOAD_TOO_LARGE)
    return header, data_length, payload_length


async def _with_timeout(coro: Any, timeout: float | None) -> Any:
    if timeout is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, timeout)
    except TimeoutError:
        raise ProtocolError(
            IDLE_TIMEOUT, f"No complete event within {timeout:g} s; closing idle connection"
        ) from None


async def _header_line(
    reader: asyncio.StreamReader, limits: Limits, busy: Callable[[], bool] | None
) -> bytes:
    while True:
        try:
            line: bytes = await _with_timeout(reader.readuntil(b"\n"), limits.idle_timeout)
            return line
        except ProtocolError as err:
            # Between events, a connection the service is still answering is not idle.
            # A cancelled readuntil leaves what it read in the buffer: waiting again loses nothing.
            if err.code == IDLE_TIMEOUT and busy is not None and busy():
                continue
            raise


async def read_event(
    reader: asyncio.StreamReader,
    limits: Limits,
    busy: Callable[[], bool] | None = None,
    budget: ByteBudget | None = None,
) -> Event | None:
    """Read one event, enforcing `limits`. Returns None on a clean end of stream.

    `busy()` is asked when the idle timeout passes between events: True keeps waiting.
    `budget` (shared by a server's connections) must have room for a large event's bytes
    before they are read; otherwise the event is refused with `overloaded`.
    """
    try:
        line = await _header_line(reader, limits, busy)
    except asyncio.IncompleteReadError as err:
        if err.partial.strip():
            raise ProtocolError(TRUNCATED, "Connection closed in the middle of an event") from None
        return None
    except asyncio.LimitOverrunError:
        raise ProtocolError(
            LINE_TOO_LONG, f"Event header line is over the limit of {limits.max_line_bytes} bytes"
        ) from None
    if len(line) > limits.max_line_bytes:
        raise ProtocolError(
            LINE_TOO_LONG, f"Event header line is over the limit of {limits.max_line_bytes} bytes"
        )

    header, data_length, payload_length = parse_header(line, limits)
    announced = data_length + payload_length
    if budget is not None and not budget.reserve(announced):
        raise ProtocolError(
            OVERLOADED,
            f"The service is already receiving {budget.used} bytes of large events from clients; "
            f"an event of {announced} bytes does not fit now, try again later",
        )
    try:
        return await _read_body(reader, limits, header, data_length, payload_length)
    finally:
        if budget is not None:
            budget.release(announced)


async def _read_body(
    reader: asyncio.StreamReader,
    limits: Limits,
    header: dict[str, Any],
    data_length: int,
    payload_length: int,
) -> Event:
    data: dict[str, Any] = dict(header.get("data") or {})
    try:
        if data_length:
            raw = await _with_timeout(reader.readexactly(data_length), limits.idle_timeout)
            try:
                extra = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as err:
                raise ProtocolError(INVALID_JSON, f"Event data is not valid JSON: {err}") from None
            if not isinstance(extra, dict):
                raise ProtocolError(INVALID_JSON, "Event data must be a JSON object")
            data.update(extra)
        payload: bytes | None = None
        if payload_length:
            payload = await _with_timeout(reader.readexactly(payload_length), limits.idle_timeout)
    except asyncio.IncompleteReadError:
        raise ProtocolError(TRUNCATED, "Connection closed in the middle of an event") from None
    return Event(type=header["type"], data=data, payload=payload)

"""One handler object per connection, with hardened reading and a route table.

Subclasses map event types to coroutines in `routes()` instead of long
if/elif chains; `describe` is always routed to `info()` so it can be answered
at once, whatever the service is busy with.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe, Info

from .admission import ByteBudget
from .errors import INTERNAL_ERROR
from .logs import clip
from .metrics import ServiceMetrics
from .protocol import Limits, ProtocolError, read_event

_LOGGER = logging.getLogger(__name__)
# A reason often quotes what the client sent (a voice name, a language): room for that, cut.
_REASON_CHARS = 500

Route = Callable[[Event], Awaitable[bool]]


# Seconds a closing connection may take to send what is still queued before it is cut.
_CLOSE_GRACE = 5.0


class ClientNotReading(ConnectionError):
    """An event could not go out within the write timeout: the client stopped reading."""


class RequestError(Exception):
    """A request the service refuses; sent to the client as an `error` event."""

    def __init__(self, code: str, text: str, *, close: bool = True) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        # Bad input ends the connection cleanly by default: the client's stream
        # state is unknown after a protocol mistake.
        self.close = close


class ConnectionHandler(ABC):
    """Reads events from one client and dispatches them by type."""

    # Set by the server: the bytes of large events all its connections may hold at once.
    budget: ByteBudget | None = None
    # The service's metrics (set by the server unless the service's factory did): errors counted here.
    metrics: ServiceMetrics | None = None

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: Limits) -> None:
        self.reader = reader
        self.writer = writer
        self.limits = limits
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "local")
        self._routes: Mapping[str, Route] = {Describe().event().type: self._describe, **self.routes()}
        self.closed = False
        self._last_write = 0.0  # monotonic time of the last event sent

    @abstractmethod
    def info(self) -> Info:
        """Service description; must never wait on a model."""

    @abstractmethod
    def routes(self) -> Mapping[str, Route]:
        """Event type -> coroutine returning False to end the connection."""

    def busy(self) -> bool:
        """True while this connection is still being answered; the idle timeout then waits.

        By default: an event went out within the idle timeout (a long reply is streaming).
        Services that work on a request in the background before the first reply event
        (a queue, a model loading) override this so a waiting client is not cut off as idle.
        """
        idle = self.limits.idle_timeout
        return idle is not None and time.monotonic() - self._last_write < idle

    async def disconnect(self) -> None:
        """Called once when the connection ends: cancel this client's work here."""

    def load(self) -> dict[str, Any] | None:
        """How busy the service is, sent with `info` as an extra `load` field (clients that do not
        know it ignore it; a client pool may prefer the least loaded instance). None: not sent."""
        return None

    async def _describe(self, _event: Event) -> bool:
        if self.metrics is not None:
            self.metrics.request("describe")
        event = self.info().event()
        load = self.load()
        if load is not None:
            event.data["load"] = load
        await self.write_event(event)
        return True

    async def write_event(self, event: Event) -> None:
        if self.closed:
            raise ConnectionResetError("client has disconnected")
        timeout = self.limits.write_timeout
        try:
            # Only drain() waits, after the whole event is queued: a timeout never cuts one in half.
            await asyncio.wait_for(async_write_event(event, self.writer), timeout)
        except TimeoutError:
            if not self.writer.transport.is_closing():
                _LOGGER.warning(
                    "Closing connection from %s: it has not read what was sent for %g s", self.peer, timeout
                )
            # Cut at once: a graceful close would wait for the same client to read.
            self.writer.transport.abort()
            raise ClientNotReading(f"client did not read for {timeout:g} s") from None
        self._last_write = time.monotonic()

    async def send_error(self, code: str, text: str) -> None:
        if self.metrics is not None:
            self.metrics.error(code)
        try:
            await self.write_event(Error(text=text, code=code).event())
        except (ConnectionError, RuntimeError):
            pass

    async def on_unknown(self, event: Event) -> bool:
        # Peers are expected to ignore events they do not know (e.g. newer
        # protocol additions); an error here could break a working client.
        _LOGGER.debug("Ignoring unknown event '%s' from %s", clip(event.type), self.peer)
        return True

    async def run(self) -> None:
        try:
            while True:
                try:
                    event = await read_event(self.reader, self.limits, self.busy, self.budget)
                except ProtocolError as err:
                    reason = clip(err.text, _REASON_CHARS)
                    _LOGGER.warning("Closing connection from %s: %s", self.peer, reason)
                    await self.send_error(err.code, err.text)
                    break
                if event is None:
                    break
                route = self._routes.get(event.type)
                try:
                    keep_going = await (route(event) if route else self.on_unknown(event))
                except RequestError as err:
                    _LOGGER.warning(
                        "Rejected %s from %s: %s", clip(event.type), self.peer, clip(err.text, _REASON_CHARS)
                    )
                    await self.send_error(err.code, err.text)
                    keep_going = not err.close
                if not keep_going:
                    break
        except (ConnectionError, BrokenPipeError):
            _LOGGER.debug("Client %s went away", self.peer)
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("Unexpected error while serving %s", self.peer)
            await self.send_error(INTERNAL_ERROR, "Internal error in the service; see its log")
        finally:
            await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.disconnect()
        finally:
            self.writer.close()
            try:
                # What is still queued (a last error event) goes out unless the client never reads.
                await asyncio.wait_for(self.writer.wait_closed(), _CLOSE_GRACE)
            except TimeoutError:
                self.writer.transport.abort()
            except (ConnectionError, OSError):
                pass

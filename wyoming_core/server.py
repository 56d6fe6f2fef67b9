"""Start a Wyoming server from `--uri` (tcp://, unix://, stdio://), with its admission rules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from wyoming.error import Error
from wyoming.event import Event, async_write_event

from .admission import Admission, AdmissionSettings, peer_address
from .handler import ConnectionHandler
from .protocol import Limits

_LOGGER = logging.getLogger(__name__)

HandlerFactory = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Limits], ConnectionHandler]

# File descriptors the process needs besides its connections (models, pipes, zeroconf, logs).
_SPARE_FDS = 128
# Seconds a refused client gets to take its `error` event before the socket is cut.
_REFUSAL_GRACE = 1.0


@dataclass(frozen=True)
class ServerSettings:
    uri: str
    limits: Limits = Limits()
    # None: no zeroconf; "": advertise under the default (host-based) name.
    zeroconf_name: str | None = None
    admission: AdmissionSettings = AdmissionSettings()


def _ensure_fd_room(connections: int) -> None:
    """Raise the soft open-file limit if the connection cap needs it (up to the hard limit)."""
    needed = connections + _SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        _LOGGER.warning(
            "The open-file limit (%d) is low for --max-connections %d; lower it, or raise the "
            "limit (ulimit -n, or LimitNOFILE= in a systemd unit)",
            target,
            connections,
        )


async def _refuse(writer: asyncio.StreamWriter, code: str, text: str) -> None:
    """Tell a refused client why, without reading anything it sent, and close."""
    event: Event = Error(text=text, code=code).event()
    with contextlib.suppress(TimeoutError, ConnectionError, OSError, RuntimeError):
        await asyncio.wait_for(async_write_event(event, writer), _REFUSAL_GRACE)
    writer.close()


class RunningServer:
    """A started server; `port` is the real port (useful with tcp://...:0)."""

    def __init__(self, settings: ServerSettings, factory: HandlerFactory) -> None:
        self.settings = settings
        self._factory = factory
        self.admission = Admission(settings.admission)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stdio_task: asyncio.Task[None] | None = None
        self._unix_path: Path | None = None
        self.host: str | None = None
        self.port: int | None = None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = peer_address(writer.get_extra_info("peername"))
        if not self.admission.allowed(address):
            writer.transport.abort()  # not a word to a stranger: closed at once
            return
        refusal = self.admission.admit(address)
        if refusal is not None:
            await _refuse(writer, refusal.code, refusal.text)
            return
        task = asyncio.current_task()
        try:
            handler = self._factory(reader, writer, self.settings.limits)
            handler.budget = self.admission.budget
            if task is not None:
                self._tasks.add(task)
            await handler.run()
        finally:
            self.admission.leave(address)
            if task is not None:
                self._tasks.discard(task)

    async def start(self) -> None:
        parsed = urlparse(self.settings.uri)
        limit = self.settings.limits.max_line_bytes
        if parsed.scheme in ("tcp", "unix"):
            _ensure_fd_room(self.settings.admission.max_connections)
        if parsed.scheme == "tcp":
            if parsed.hostname is None or parsed.port is None:
                raise ValueError(f"tcp:// URI needs a host and a port: {self.settings.uri}")
            self._server = await asyncio.start_server(
                self._on_client, parsed.hostname, parsed.port, limit=limit, reuse_address=True
            )
            sockname = self._server.sockets[0].getsockname()
            self.host, self.port = parsed.hostname, int(sockname[1])
        elif parsed.scheme == "unix":
            self._unix_path = Path(parsed.netloc + parsed.path)
            self._unix_path.unlink(missing_ok=True)
            self._server = await asyncio.start_unix_server(
                self._on_client, path=str(self._unix_path), limit=limit
            )
        elif parsed.scheme == "stdio":
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=limit)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
            writer = asyncio.StreamWriter(transport, protocol, None, loop)
            self._stdio_task = asyncio.create_task(self._on_client(reader, writer))
        else:
            raise ValueError(
                f"Unsupported URI {self.settings.uri!r}: use tcp://HOST:PORT, unix://PATH or stdio://"
            )

    async def wait(self) -> None:
        if self._stdio_task is not None:
            await self._stdio_task
        elif self._server is not None:
            await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._stdio_task is not None:
            self._stdio_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stdio_task
        if self._unix_path is not None:
            self._unix_path.unlink(missing_ok=True)


async def serve(
    settings: ServerSettings,
    factory: HandlerFactory,
    *,
    service_name: str,
    on_started: Callable[[RunningServer], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or stdin closes), advertising via zeroconf if asked."""
    server = RunningServer(settings, factory)
    await server.start()
    _LOGGER.info("%s is listening on %s", service_name, settings.uri)
    if on_started is not None:
        on_started(server)

    loop = asyncio.get_running_loop()
    wait_task = asyncio.ensure_future(server.wait())
    # Before advertising: a stop while announcing must still send the zeroconf goodbye.
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, wait_task.cancel)

    advertiser = None
    try:
        if settings.zeroconf_name is not None and server.port is not None:
            from discovery.advertise import Advertiser  # only needed with --zeroconf

            advertiser = Advertiser(
                name=settings.zeroconf_name or None,
                port=server.port,
                bind_host=server.host,
                service_name=service_name,
            )
            advertise_task = asyncio.ensure_future(advertiser.start())
            await asyncio.wait({advertise_task, wait_task}, return_when=asyncio.FIRST_COMPLETED)
            if not advertise_task.done():
                advertise_task.cancel()
        await wait_task
    except asyncio.CancelledError:
        _LOGGER.info("%s is shutting down", service_name)
    finally:
        if advertiser is not None:
            await advertiser.stop()
        await server.stop()

"""Start a Wyoming server from `--uri` (tcp://, unix://, stdio://), with its admission rules."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import resource
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from wyoming import __version__ as wyoming_version
from wyoming.error import Error
from wyoming.event import Event

from . import __version__
from .admission import Admission, AdmissionSettings, peer_address
from .handler import ConnectionHandler
from .listen import accept_forever, tcp_listeners, unix_listener
from .metrics import ServiceMetrics
from .protocol import Limits

if TYPE_CHECKING:
    from .http import HealthCheck, Monitor

# The exit code of a service whose port is taken (wyoming_core/cli.py run_service says so too).
EXIT_ADDRESS_IN_USE = 4

_LOGGER = logging.getLogger(__name__)

HandlerFactory = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Limits], ConnectionHandler]

# File descriptors the process needs besides its connections (models, pipes, zeroconf, logs).
_SPARE_FDS = 128


@dataclass(frozen=True)
class HttpAddress:
    """Where `--http` serves /metrics and /healthz."""

    host: str
    port: int


@dataclass(frozen=True)
class ServerSettings:
    uri: str
    limits: Limits = Limits()
    # None: no zeroconf; "": advertise under the default (host-based) name.
    zeroconf_name: str | None = None
    admission: AdmissionSettings = AdmissionSettings()
    # None: no HTTP endpoint.
    http: HttpAddress | None = None


class ListenError(Exception):
    """An address given on the command line cannot be listened on (exit with `exit_code`)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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


def _encode(event: Event) -> bytes:
    """An event as it goes on the wire (for a socket that gets one event and is closed)."""
    data = json.dumps(event.data, ensure_ascii=False).encode() if event.data else b""
    header: dict[str, object] = {"type": event.type, "version": wyoming_version}
    if data:
        header["data_length"] = len(data)
    return json.dumps(header, ensure_ascii=False).encode() + b"\n" + data


class RunningServer:
    """A started server; `port` is the real port (useful with tcp://...:0)."""

    def __init__(
        self, settings: ServerSettings, factory: HandlerFactory, metrics: ServiceMetrics | None = None
    ) -> None:
        self.settings = settings
        self._factory = factory
        self.admission = Admission(settings.admission)
        self.metrics = metrics
        if metrics is not None:
            metrics.watch_connections(lambda: self.admission.total)
        self._listeners: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stdio_task: asyncio.Task[None] | None = None
        self._unix_path: Path | None = None
        self.host: str | None = None
        self.port: int | None = None

    def _on_connection(self, conn: socket.socket, peername: object) -> None:
        """Admit or refuse a connection the moment it is accepted (no await before the decision)."""
        address = peer_address(peername)
        if not self.admission.allowed(address):
            conn.close()  # not a word to a stranger: closed at once
            return
        refusal = self.admission.admit(address)
        if refusal is not None:
            if self.metrics is not None:
                self.metrics.error(refusal.code)
            # A fresh socket's send buffer always takes one small event; nothing is read.
            with contextlib.suppress(OSError):
                conn.send(_encode(Error(text=refusal.text, code=refusal.code).event()))
            conn.close()
            return
        task = asyncio.create_task(self._serve(conn, address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket, address: str | None) -> None:
        try:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=self.settings.limits.max_line_bytes)
            protocol = asyncio.StreamReaderProtocol(reader)
            try:
                transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn)
            except BaseException:
                conn.close()
                raise
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await self._run_handler(reader, writer)
        finally:
            self.admission.leave(address)

    async def _run_handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = self._factory(reader, writer, self.settings.limits)
        handler.budget = self.admission.budget
        if handler.metrics is None:
            handler.metrics = self.metrics
        await handler.run()

    async def start(self) -> None:
        parsed = urlparse(self.settings.uri)
        if parsed.scheme in ("tcp", "unix"):
            _ensure_fd_room(self.settings.admission.max_connections)
        if parsed.scheme == "tcp":
            if parsed.hostname is None or parsed.port is None:
                raise ValueError(f"tcp:// URI needs a host and a port: {self.settings.uri}")
            self._listeners = await tcp_listeners(parsed.hostname, parsed.port)
            self.host, self.port = parsed.hostname, int(self._listeners[0].getsockname()[1])
        elif parsed.scheme == "unix":
            self._unix_path = Path(parsed.netloc + parsed.path)
            self._listeners = [unix_listener(self._unix_path)]
        elif parsed.scheme == "stdio":
            limit = self.settings.limits.max_line_bytes
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=limit)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
            writer = asyncio.StreamWriter(transport, protocol, None, loop)
            self._stdio_task = asyncio.create_task(self._run_handler(reader, writer))
        else:
            raise ValueError(
                f"Unsupported URI {self.settings.uri!r}: use tcp://HOST:PORT, unix://PATH or stdio://"
            )
        self._accepting = [
            asyncio.create_task(accept_forever(sock, self._on_connection)) for sock in self._listeners
        ]

    async def wait(self) -> None:
        if self._stdio_task is not None:
            await self._stdio_task
        elif self._accepting:
            await asyncio.gather(*self._accepting)

    async def stop(self) -> None:
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for sock in self._listeners:
            sock.close()
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
    metrics: ServiceMetrics | None = None,
    health: HealthCheck | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or stdin closes), advertising via zeroconf if asked, with
    /metrics and /healthz on `settings.http` if given (`health`: default ready)."""
    metrics = metrics or ServiceMetrics(service_name, __version__)
    server = RunningServer(settings, factory, metrics)
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
    monitor = None
    try:
        if settings.http is not None:
            monitor = await start_monitor(settings.http, metrics, health, server.admission.allowed)
            _LOGGER.info("%s serves /metrics and /healthz on %s", service_name, monitor.url)
        if settings.zeroconf_name is not None and server.port is not None:
            from .advertise import Advertiser  # only needed with --zeroconf (imports zeroconf)

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
        if monitor is not None:
            await monitor.stop()
        await server.stop()


async def start_monitor(
    address: HttpAddress,
    metrics: ServiceMetrics,
    health: HealthCheck | None = None,
    allowed: Callable[[str | None], bool] | None = None,
) -> Monitor:
    """/metrics and /healthz on `address`, started; OSError becomes a ListenError that says why."""
    from .http import Health, Monitor, monitor_app  # only with --http (aiohttp takes a moment)

    def ready() -> Health:
        return Health(ready=True, version=metrics.version)

    monitor = Monitor(monitor_app(metrics, health or ready, allowed), address.host, address.port)
    await open_monitor(monitor, "/metrics and /healthz")
    return monitor


async def open_monitor(monitor: Monitor, what: str) -> None:
    """Start `monitor`; an OSError becomes a ListenError that says why and which flag helps."""
    try:
        await monitor.start()
    except OSError as err:
        taken = err.errno == errno.EADDRINUSE
        why = "it is already in use by another program" if taken else err.strerror or str(err)
        raise ListenError(
            f"Cannot serve {what} on {monitor.host}:{monitor.port}: {why}. "
            "Choose another address with --http HOST:PORT",
            EXIT_ADDRESS_IN_USE if taken else 3,
        ) from None

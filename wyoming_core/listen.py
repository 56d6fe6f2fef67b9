"""Listening sockets, and accepting from them one connection at a time.

asyncio's own accept loop takes up to 100 connections from the kernel at once and needs several
turns of the event loop to hand each one over, so a burst of clients (300 at once) holds that
many file descriptors before any of them can be refused: with the open-file limit at 128 the
service then runs out. Here every connection is taken alone and admitted or refused at once,
so a refused one never holds a descriptor longer than that.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from pathlib import Path

from .admission import RateLimitedLog

_LOGGER = logging.getLogger(__name__)

BACKLOG = 128
# The kernel is out of something for new sockets: wait, the connection stays queued meanwhile.
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_RETRY_DELAY = 1.0


async def tcp_listeners(host: str, port: int) -> list[socket.socket]:
    """One listening socket per address `host` resolves to (as asyncio.start_server does)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as err:
                # Said as asyncio says it, so the one-line message can name the port.
                where = f"({str(address[0])!r}, {int(address[1])})"
                raise OSError(
                    err.errno, f"error while attempting to bind on address {where}: {err.strerror}"
                ) from None
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    return listeners


def unix_listener(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def accept_forever(
    listener: socket.socket, on_connection: Callable[[socket.socket, object], None]
) -> None:
    """Hand every accepted connection to `on_connection` (synchronously: it decides at once)."""
    loop = asyncio.get_running_loop()
    out_of_files = RateLimitedLog(60.0)
    while True:
        try:
            conn, address = await loop.sock_accept(listener)
        except OSError as err:
            if err.errno in _RESOURCE_ERRORS:
                out_of_files.warning(
                    "Cannot take new connections (%s); they wait. Raise the open-file limit "
                    "(ulimit -n, LimitNOFILE=) or lower --max-connections",
                    err.strerror,
                )
                await asyncio.sleep(_RETRY_DELAY)
                continue
            if err.errno == errno.ECONNABORTED:  # the client gave up while queued
                continue
            raise
        conn.setblocking(False)
        try:
            on_connection(conn, address)
        except Exception:
            conn.close()
            _LOGGER.exception("Could not take a connection from %s", address)

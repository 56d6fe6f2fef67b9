"""Pick a real interface address to advertise (never 0.0.0.0)."""

from __future__ import annotations

import ipaddress
import socket

_MDNS_GROUP = "224.0.0.251"


def routable_address() -> str | None:
    """The address the kernel would use for multicast, i.e. the LAN-facing one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((_MDNS_GROUP, 5353))  # UDP connect sends nothing
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("0.") else address


def advertise_address(bind_host: str | None) -> str:
    """A specific bind address is used as is; a wildcard becomes the LAN address."""
    if bind_host:
        try:
            ip = ipaddress.ip_address(bind_host)
        except ValueError:
            try:
                ip = ipaddress.ip_address(socket.gethostbyname(bind_host))
            except OSError:
                ip = None
        if ip is not None and not ip.is_unspecified:
            return str(ip)
    return routable_address() or "127.0.0.1"

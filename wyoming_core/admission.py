"""Who may connect, and how much of the service all clients together may hold.

Wyoming has no authentication: anyone who can reach the port may connect. A server therefore
keeps an optional allow-list (`--allow CIDR,...`: anyone else is closed at once), a global and a
per-address connection cap, and one budget for the bytes of events that clients have announced
but not finished sending. A refused client gets an `error` event and a close; nothing it sends
is read. All state belongs to one running server (nothing global).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import OVERLOADED, TOO_MANY_CONNECTIONS

_LOGGER = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Events at most this large are not counted against the budget: every connection may
# always finish a normal audio chunk or text (the per-connection read limits bound them).
SMALL_EVENT_BYTES = 64 * 1024
# Addresses refused by the allow-list that are each logged once; past this, one summary line.
_MAX_LOGGED_ADDRESSES = 256
# Refusals because of the caps are logged at most this often (with a count), not one per connection.
_CAP_LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class AdmissionSettings:
    """Defaults fit a house: a few satellites, Home Assistant and scripts, with room to spare."""

    max_connections: int = 64
    max_per_address: int = 16
    # Bytes of unfinished large events (payloads, data blocks) all connections may hold at once.
    max_buffered_bytes: int = 16 * 1024 * 1024
    # Empty: every address may connect.
    allow: tuple[IPNetwork, ...] = ()


def parse_allow(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """`192.168.1.0/24`, `10.0.0.5`, `::1`, comma-separated or repeated; ValueError with the bad one."""
    networks: list[IPNetwork] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(
                    f"{part!r} is not an address or network (examples: 192.168.1.0/24, 10.0.0.5, ::1)"
                ) from None
    return tuple(networks)


def peer_address(peername: object) -> str | None:
    """The client's IP address as text (IPv4-mapped IPv6 as plain IPv4); None for local sockets."""
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return None
    host = peername[0].split("%", 1)[0]  # drop an IPv6 zone id
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class ByteBudget:
    """Bytes of large events being received, across every connection of one server."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def reserve(self, size: int) -> bool:
        """Take `size` bytes if they fit (small events always do, and cost nothing)."""
        if size <= SMALL_EVENT_BYTES:
            return True
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        if size > SMALL_EVENT_BYTES:
            self.used = max(0, self.used - size)


@dataclass(frozen=True)
class Refusal:
    code: str
    text: str


class RateLimitedLog:
    """One warning now, then at most one per interval, with how many were held back in between."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -interval
        self._skipped = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._skipped += 1
            return
        suffix = f" ({self._skipped} more like it since the last such message)" if self._skipped else ""
        _LOGGER.warning(message + suffix, *args)
        self._last, self._skipped = now, 0


class Admission:
    """The connection counts and the byte budget of one running server."""

    def __init__(self, settings: AdmissionSettings) -> None:
        self.settings = settings
        self.budget = ByteBudget(settings.max_buffered_bytes)
        self.total = 0
        self._per_address: Counter[str] = Counter()
        self._logged_strangers: set[str] = set()
        self._strangers_overflow = False
        self._cap_logs = {
            OVERLOADED: RateLimitedLog(_CAP_LOG_INTERVAL),
            TOO_MANY_CONNECTIONS: RateLimitedLog(_CAP_LOG_INTERVAL),
        }

    def allowed(self, address: str | None) -> bool:
        """False for a TCP client outside the allow-list (logged once per address)."""
        networks = self.settings.allow
        if not networks or address is None:  # local sockets and stdio are always allowed
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        if ip is not None and any(ip.version == net.version and ip in net for net in networks):
            return True
        if address not in self._logged_strangers:
            if len(self._logged_strangers) < _MAX_LOGGED_ADDRESSES:
                self._logged_strangers.add(address)
                _LOGGER.warning(
                    "Refused a connection from %s: it is not in --allow (%s); "
                    "further connections from it are closed without a message",
                    address,
                    ", ".join(str(n) for n in networks),
                )
            elif not self._strangers_overflow:
                self._strangers_overflow = True
                _LOGGER.warning(
                    "Connections from more than %d addresses outside --allow were refused; "
                    "no longer logging each new one",
                    _MAX_LOGGED_ADDRESSES,
                )
        return False

    def admit(self, address: str | None) -> Refusal | None:
        """Count a new connection in, or say why it is refused."""
        key = address or "local"
        if self.total >= self.settings.max_connections:
            self._cap_logs[OVERLOADED].warning(
                "Refused a connection from %s: %d connections are open, the limit (--max-connections)",
                key,
                self.total,
            )
            return Refusal(
                OVERLOADED,
                f"The service has {self.total} connections open, its limit; try again later",
            )
        if self._per_address[key] >= self.settings.max_per_address:
            self._cap_logs[TOO_MANY_CONNECTIONS].warning(
                "Refused a connection from %s: it already has %d open, the limit "
                "(--max-connections-per-address)",
                key,
                self._per_address[key],
            )
            return Refusal(
                TOO_MANY_CONNECTIONS,
                f"Too many connections from {key} ({self._per_address[key]} open, the limit); "
                "close some first",
            )
        self.total += 1
        self._per_address[key] += 1
        return None

    def leave(self, address: str | None) -> None:
        key = address or "local"
        self.total = max(0, self.total - 1)
        self._per_address[key] -= 1
        if self._per_address[key] <= 0:
            del self._per_address[key]

"""Is an advert that points at a loopback or link-local address really from this host?

Anyone on the network may answer mDNS. An advert from another host that gives 127.0.0.1 (or a
169.254.x.x / fe80:: address) would point a browser at a port on its *own* machine, or at a
neighbour it cannot tell apart. A genuine advert for a loopback address comes from a service on
this host, announced on the loopback interface. So such an advert is checked by asking over the
loopback interface only, where no other host can hear or answer: a responder on this host must
announce the same instance name at the same port. Any other advert with such an address is
refused (`announced_here` is False).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct

from zeroconf import DNSIncoming, DNSOutgoing, DNSQuestion, DNSService, const

_MDNS_GROUP = "224.0.0.251"
_MDNS_PORT = 5353
_LOOPBACK = "127.0.0.1"


def local_only(address: str) -> bool:
    """A loopback or link-local address: meaningful only on this host or its own link."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_link_local


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class _Answers(asyncio.DatagramProtocol):
    def __init__(self, full_name: str, port: int) -> None:
        self.full_name = full_name.lower()
        self.port = port
        self.found: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        host = addr[0]
        # Only this host can send from a loopback source (the kernel drops such packets from outside).
        if not isinstance(host, str) or not _is_loopback(host) or self.found.done():
            return
        try:
            message = DNSIncoming(data, (host, int(str(addr[1]))))
        except Exception:  # a malformed packet is simply not an answer
            return
        for record in message.answers():
            if (
                isinstance(record, DNSService)
                and record.name.lower() == self.full_name
                and record.port == self.port
            ):
                self.found.set_result(True)
                return


async def announced_here(full_name: str, port: int, timeout: float = 1.0) -> bool:
    """True if a responder on this host announces `full_name` at `port` (asked on loopback only).

    A one-shot ("legacy unicast") query from an ephemeral port: responders answer it directly,
    so the answer reaches only this socket.
    """
    query = DNSOutgoing(const._FLAGS_QR_QUERY)
    query.add_question(DNSQuestion(full_name, const._TYPE_SRV, const._CLASS_IN))
    packet = query.packets()[0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(_LOOPBACK))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 1))
        sock.bind((_LOOPBACK, 0))
    except OSError:
        sock.close()
        return False
    loop = asyncio.get_running_loop()
    answers = _Answers(full_name, port)
    transport, _ = await loop.create_datagram_endpoint(lambda: answers, sock=sock)
    try:
        transport.sendto(packet, (_MDNS_GROUP, _MDNS_PORT))
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(answers.found, timeout)
        return False
    except OSError:  # no multicast on loopback here: nothing local can be announced there either
        return False
    finally:
        transport.close()

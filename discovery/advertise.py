"""Advertise one Wyoming server over mDNS, as Home Assistant's discovery expects."""

from __future__ import annotations

import logging
import socket
import uuid

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from . import SERVICE_TYPE
from .addresses import advertise_address

_LOGGER = logging.getLogger(__name__)


def default_instance_name(service_name: str) -> str:
    """Stable per host and service, so HA keeps the same entry across restarts."""
    host = socket.gethostname().split(".")[0] or f"{uuid.getnode():012x}"
    return f"{service_name}-{host}"


class Advertiser:
    """Registers `NAME._wyoming._tcp.local.` and unregisters it on stop."""

    def __init__(self, name: str | None, port: int, bind_host: str | None, service_name: str) -> None:
        self.name = name or default_instance_name(service_name)
        self.port = port
        self.bind_host = bind_host
        self.address = advertise_address(bind_host)
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    def _service_info(self) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.name}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(self.address)],
            port=self.port,
            server=f"{self.name}.local.",
        )

    async def start(self) -> None:
        interfaces = [self.address] if self.address != "127.0.0.1" else ["127.0.0.1"]
        self._zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        self._info = self._service_info()
        await self._zeroconf.async_register_service(self._info, allow_name_change=True)
        _LOGGER.info("Advertising %r on %s:%s over zeroconf", self.name, self.address, self.port)

    async def stop(self) -> None:
        if self._zeroconf is None:
            return
        try:
            if self._info is not None:
                await self._zeroconf.async_unregister_service(self._info)
        finally:
            await self._zeroconf.async_close()
            self._zeroconf = None

"""Advertise one Wyoming server over mDNS, as Home Assistant's discovery expects.

The instance name is stable (service, host and port), so Home Assistant keeps the same
entry across restarts; the address is a real interface address (never 0.0.0.0) and is
re-announced when it changes (DHCP renewals, Wi-Fi roaming); stop() sends the goodbye.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import uuid
from collections.abc import Callable

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from .addresses import advertise_address

# The DNS-SD type Home Assistant's wyoming integration browses for.
SERVICE_TYPE = "_wyoming._tcp.local."

_LOGGER = logging.getLogger(__name__)

# DNS labels are at most 63 bytes.
_MAX_LABEL = 63


def default_instance_name(service_name: str, port: int | None = None) -> str:
    """Stable per host, service and port, so HA keeps the same entry across restarts."""
    host = socket.gethostname().split(".")[0] or f"{uuid.getnode():012x}"
    name = f"{service_name}-{host}" + (f"-{port}" if port else "")
    return re.sub(r"[^A-Za-z0-9-]+", "-", name)[:_MAX_LABEL].strip("-")


class Advertiser:
    """Registers `NAME._wyoming._tcp.local.`, follows address changes, unregisters on stop."""

    def __init__(
        self,
        name: str | None,
        port: int,
        bind_host: str | None,
        service_name: str,
        *,
        recheck_interval: float = 15.0,
        address_source: Callable[[], str] | None = None,
        properties: dict[str, str] | None = None,
    ) -> None:
        self.name = name or default_instance_name(service_name, port)
        self.port = port
        self.bind_host = bind_host
        self.recheck_interval = recheck_interval
        self._address_source = address_source or (lambda: advertise_address(bind_host))
        self.address = self._address_source()
        self.properties = dict(properties or {})
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._watch: asyncio.Task[None] | None = None

    def _service_info(self) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.name}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(self.address)],
            port=self.port,
            properties=self.properties,
            server=f"{self.name}.local.",
        )

    async def _register(self) -> None:
        # Only on the interface that owns the address: announcing it elsewhere would
        # point other networks at an address they cannot reach.
        self._zeroconf = AsyncZeroconf(interfaces=[self.address], ip_version=IPVersion.V4Only)
        self._info = self._service_info()
        # The call returns the announcing task; waiting for it means we are really announced.
        await (await self._zeroconf.async_register_service(self._info, allow_name_change=True))
        # A name clash (two hosts with the same name) makes zeroconf pick another one.
        self.name = self._info.name.removesuffix(f".{SERVICE_TYPE}")
        _LOGGER.info("Advertising %r on %s:%s over zeroconf", self.name, self.address, self.port)

    async def _unregister(self) -> None:
        if self._zeroconf is None:
            return
        try:
            if self._info is not None:
                # Wait for the goodbye to go out: closing at once would drop it.
                await (await self._zeroconf.async_unregister_service(self._info))
        except Exception as err:  # the goodbye is best effort; closing must still happen
            _LOGGER.warning("Could not send the zeroconf goodbye for %r: %s", self.name, err)
        finally:
            await self._zeroconf.async_close()
            self._zeroconf = None
            self._info = None

    async def start(self) -> None:
        try:
            await self._register()
        except Exception as err:  # no multicast here must not stop the service itself
            _LOGGER.error("Could not advertise %r over zeroconf on %s: %s", self.name, self.address, err)
            await self._unregister()
        if self.recheck_interval > 0:
            self._watch = asyncio.create_task(self._follow_address())

    async def _follow_address(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_interval)
            try:
                # May resolve a host name: keep it off the event loop.
                address = await asyncio.to_thread(self._address_source)
            except OSError as err:
                _LOGGER.debug("Could not look up the address to advertise: %s", err)
                continue
            if address == self.address:
                continue
            _LOGGER.info(
                "Address changed from %s to %s; announcing %r again", self.address, address, self.name
            )
            await self._unregister()
            self.address = address
            try:
                await self._register()
            except Exception as err:  # keep watching: the next change may work
                _LOGGER.error("Could not advertise %r on %s: %s", self.name, address, err)
                await self._unregister()

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self._unregister()

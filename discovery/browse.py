"""Find Wyoming services over mDNS and keep a current, described list of them.

    async with Browser() as browser:
        await browser.wait_for(lambda found: any(s.offers_kind("asr") for s in found), timeout=5)
        for service in browser.of_kind("asr"):
            print(service.name, service.uri, service.offers)

Every service found is asked to `describe` itself (within `describe_timeout` in all);
services are re-described every `recheck_interval` seconds, so one that stops answering
without a goodbye (a crash, a pulled plug) is marked as not answering until it comes back or
its record expires. An advert that points at a loopback or link-local address is only believed
if a responder on this host announces it (`discovery.locality`): otherwise it is listed with an
error and never contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from wyoming.info import Info
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from wyoming_core.client import VoiceError, describe

from . import SERVICE_TYPE
from .catalog import KINDS, Offer, offers
from .locality import announced_here, local_only

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundService:
    """One advertised service and what it said about itself."""

    name: str  # the instance name, without `._wyoming._tcp.local.`
    host: str
    port: int
    offers: tuple[Offer, ...] = ()
    error: str | None = None  # why describe failed; None when it answered
    info: Info | None = field(default=None, compare=False, repr=False)
    seen_at: float = field(default=0.0, compare=False)
    # An advert not believed (see discovery.locality): never contacted, never used.
    refused: bool = False

    @property
    def uri(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    @property
    def answering(self) -> bool:
        return self.error is None and self.info is not None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(offer.kind for offer in self.offers))

    def offers_kind(self, kind: str) -> bool:
        return kind in self.kinds

    @property
    def sort_key(self) -> tuple[int, str]:
        first = min((KINDS.index(k) for k in self.kinds if k in KINDS), default=len(KINDS))
        return first, self.name.lower()


async def describe_service(name: str, host: str, port: int, timeout: float) -> FoundService:
    """Ask one service what it offers; a failure is recorded, not raised."""
    found = FoundService(name, host, port, seen_at=time.monotonic())
    try:
        info = await describe(found.uri, timeout=timeout)
    except VoiceError as err:
        return replace(found, error=str(err))
    return replace(found, offers=offers(info), info=info)


def instance_name(full_name: str) -> str:
    return full_name.removesuffix("." + SERVICE_TYPE)


class Browser:
    """Browses `_wyoming._tcp.local.` and keeps `services` current (added, updated, removed)."""

    def __init__(
        self,
        interfaces: Sequence[str] | None = None,
        *,
        describe_timeout: float = 2.0,
        recheck_interval: float = 30.0,
        zeroconf: AsyncZeroconf | None = None,
    ) -> None:
        self.interfaces = list(interfaces) if interfaces else None
        self.describe_timeout = describe_timeout
        self.recheck_interval = recheck_interval
        self._services: dict[str, FoundService] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._listeners: list[Callable[[list[FoundService]], None]] = []
        # Set and replaced on every change: waiters hold the one that was current.
        self._changed = asyncio.Event()
        self._own_zeroconf = zeroconf is None
        self._zeroconf = zeroconf
        self._browser: AsyncServiceBrowser | None = None
        self._recheck: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> Browser:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def services(self) -> list[FoundService]:
        """Every service found, sorted by what it offers (asr, tts, handle, wake, satellite)."""
        return sorted(self._services.values(), key=lambda s: s.sort_key)

    def of_kind(self, kind: str, *, answering_only: bool = True) -> list[FoundService]:
        return [s for s in self.services if s.offers_kind(kind) and (s.answering or not answering_only)]

    def subscribe(self, listener: Callable[[list[FoundService]], None]) -> Callable[[], None]:
        """Call `listener(services)` on every change; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def wait_for(
        self, predicate: Callable[[list[FoundService]], bool], timeout: float
    ) -> list[FoundService]:
        """Wait until `predicate(services)` holds; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while not predicate(self.services):
                await self._changed.wait()
        return self.services

    async def settle(self, timeout: float) -> None:
        """Wait (up to `timeout`) for the resolves and describes under way to finish."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._pending:
                    await asyncio.wait(list(self._pending.values()))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._zeroconf is None:
            kwargs: dict[str, object] = {"ip_version": IPVersion.V4Only}
            if self.interfaces:
                kwargs["interfaces"] = self.interfaces
            self._zeroconf = AsyncZeroconf(**kwargs)  # type: ignore[arg-type]
        self._browser = AsyncServiceBrowser(self._zeroconf.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
        if self.recheck_interval > 0:
            self._recheck = asyncio.create_task(self._recheck_loop())

    async def stop(self) -> None:
        for task in [self._recheck, *self._pending.values()]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._recheck, *self._pending.values()] if t is not None), return_exceptions=True
        )
        self._pending.clear()
        self._recheck = None
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zeroconf is not None and self._own_zeroconf:
            await self._zeroconf.async_close()
            self._zeroconf = None

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        # Called by zeroconf, possibly from its own thread: hop onto our loop.
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._handle_change, name, state_change)

    def _handle_change(self, full_name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            task = self._pending.pop(full_name, None)
            if task is not None:
                task.cancel()
            if self._services.pop(full_name, None) is not None:
                _LOGGER.info("%s has gone", instance_name(full_name))
                self._notify()
            return
        previous = self._pending.pop(full_name, None)
        if previous is not None:
            previous.cancel()
        self._pending[full_name] = asyncio.create_task(self._resolve(full_name))

    async def _resolve(self, full_name: str) -> None:
        try:
            assert self._zeroconf is not None
            info = AsyncServiceInfo(SERVICE_TYPE, full_name)
            if not await info.async_request(self._zeroconf.zeroconf, 3000):
                _LOGGER.warning("%s is advertised but its address did not resolve", instance_name(full_name))
                return
            addresses = info.parsed_addresses(IPVersion.V4Only)
            if not addresses or info.port is None:
                return
            name, address, port = instance_name(full_name), addresses[0], info.port
            if local_only(address) and not await announced_here(full_name, port):
                # Not a word to it: the address may be a port on this machine or a neighbour's.
                refused = FoundService(
                    name,
                    address,
                    port,
                    error=f"advertised with the address {address}, which only this host may "
                    "announce, but not announced on this host; ignored",
                    seen_at=time.monotonic(),
                    refused=True,
                )
                self._store(full_name, refused)
                return
            found = await describe_service(name, address, port, self.describe_timeout)
            self._store(full_name, found)
        finally:
            if self._pending.get(full_name) is asyncio.current_task():
                del self._pending[full_name]

    def _store(self, full_name: str, found: FoundService) -> None:
        before = self._services.get(full_name)
        if found.error and before is not None and not found.refused and not before.refused:
            # Remember what it offered: it is still that kind of service, only not answering.
            found = replace(found, offers=before.offers, info=before.info)
        self._services[full_name] = found
        if before != found:
            if found.refused:
                _LOGGER.warning("Ignoring the advert of %s at %s: %s", found.name, found.uri, found.error)
            elif found.error:
                _LOGGER.info("%s at %s is not answering: %s", found.name, found.uri, found.error)
            else:
                _LOGGER.info("%s at %s offers %s", found.name, found.uri, ", ".join(found.kinds) or "nothing")
        self._notify()

    async def recheck(self) -> None:
        """Describe every known service again now."""
        # Refused adverts are not contacted again; only a new advert can change them.
        entries = [(n, s) for n, s in self._services.items() if not s.refused]
        results = await asyncio.gather(
            *(describe_service(s.name, s.host, s.port, self.describe_timeout) for _, s in entries)
        )
        for (full_name, _), found in zip(entries, results, strict=True):
            if full_name in self._services:  # not removed meanwhile
                self._store(full_name, found)

    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_interval)
            await self.recheck()

    def _notify(self) -> None:
        services = self.services
        for listener in list(self._listeners):
            try:
                listener(services)
            except Exception:
                _LOGGER.exception("A discovery listener failed")
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


async def browse(
    timeout: float = 3.0,
    interfaces: Sequence[str] | None = None,
    describe_timeout: float = 2.0,
) -> list[FoundService]:
    """Browse for `timeout` seconds and return what was found (each described once)."""
    async with Browser(interfaces, describe_timeout=describe_timeout, recheck_interval=0) as browser:
        await asyncio.sleep(timeout)
        await browser.settle(describe_timeout + 3.5)
        return browser.services

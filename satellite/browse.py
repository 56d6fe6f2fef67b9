"""Minimal zeroconf browse for `_wyoming._tcp.local.`: find services and `describe` each.

(The discovery package is growing a full browser; this is the satellite's small one.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from wyoming.info import Info

from wyoming_core.client import VoiceError, describe

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
KINDS = ("asr", "tts", "handle")


@dataclass(frozen=True)
class Found:
    name: str
    uri: str
    info: Info

    def offers(self, kind: str) -> bool:
        programs = getattr(self.info, kind, None) or []
        return any(getattr(p, "installed", True) for p in programs)


async def browse(seconds: float) -> list[Found]:
    """Services answering on the network within `seconds`, with their `info`."""
    from zeroconf import IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    names: set[str] = set()

    def on_change(zeroconf: object, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.add(name)

    aiozc = AsyncZeroconf(ip_version=IPVersion.V4Only)
    browser = AsyncServiceBrowser(aiozc.zeroconf, [SERVICE_TYPE], handlers=[on_change])
    try:
        await asyncio.sleep(seconds)
        uris: dict[str, str] = {}
        for name in sorted(names):
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if await info.async_request(aiozc.zeroconf, 2000) and info.port:
                addresses = info.parsed_addresses(IPVersion.V4Only)
                if addresses:
                    uris[name] = f"tcp://{addresses[0]}:{info.port}"
    finally:
        with contextlib.suppress(Exception):
            await browser.async_cancel()
        await aiozc.async_close()

    async def one(name: str, uri: str) -> Found | None:
        try:
            return Found(name, uri, await describe(uri, timeout=2.0))
        except VoiceError as err:
            _LOGGER.info("Found %s at %s but it does not answer describe: %s", name, uri, err)
            return None

    results = await asyncio.gather(*(one(n, u) for n, u in uris.items()))
    return [r for r in results if r is not None]

"""Where the standalone satellite's services are, and whether they are up.

Services not given on the command line are found with zeroconf (`discovery.browse`). Anyone on
the network may advertise one, so `--stt-name`/`--tts-name`/`--handle-name` pin a kind to one
exact instance name (and `--service-filter` narrows by part of the name); `discovery.browse`
already refuses loopback and link-local adverts that this host did not announce.

A service that fails is logged by name and probed with `describe` at growing intervals
(1 s, 2 s, 4 s ... 30 s) until it answers again; turns keep being tried meanwhile, so the
satellite never waits on a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wyoming_core.client import ServiceUnavailable, VoiceError, describe

from .settings import TurnSettings

if TYPE_CHECKING:
    from discovery.browse import FoundService

_LOGGER = logging.getLogger(__name__)

LABELS = {"asr": "STT", "tts": "TTS", "handle": "handle"}
_FLAG = {"asr": "stt", "tts": "tts", "handle": "handle"}
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0


@dataclass
class _Entry:
    uri: str | None
    given: bool  # from the command line, not zeroconf
    down: bool = False
    probe: asyncio.Task[None] | None = field(default=None)


class ServiceDirectory:
    def __init__(self, settings: TurnSettings) -> None:
        self.settings = settings
        self._entries = {
            "asr": _Entry(settings.stt_uri, settings.stt_uri is not None),
            "tts": _Entry(settings.tts_uri, settings.tts_uri is not None),
            "handle": _Entry(settings.handle_uri, settings.handle_uri is not None),
        }
        self._browse_lock = asyncio.Lock()
        self._tts_streaming: dict[str, bool] = {}

    async def discover(self) -> None:
        """Fill in what was not given on the command line (or has gone) from zeroconf."""
        async with self._browse_lock:
            missing = [kind for kind, entry in self._entries.items() if entry.uri is None]
            if not missing:
                return
            _LOGGER.info("Looking for %s over zeroconf", ", ".join(LABELS[k] for k in missing))
            from discovery.browse import browse  # only needed without explicit URIs

            try:
                found = await browse(self.settings.discover_seconds)
            except OSError as err:
                _LOGGER.warning("Zeroconf browsing failed: %s", err)
                return
            for kind in missing:
                pinned = self._pinned(kind)
                usable = [s for s in found if s.answering and s.offers_kind(kind) and self._wanted(kind, s)]
                if usable:
                    service = usable[0]
                    self._entries[kind].uri = service.uri
                    _LOGGER.info("Using %s service %r at %s", LABELS[kind], service.name, service.uri)
                elif pinned is not None:
                    _LOGGER.warning(
                        "No %s service named %r answers over zeroconf (--%s-name); "
                        "python -m discovery lists what is there",
                        LABELS[kind],
                        pinned,
                        _FLAG[kind],
                    )
                else:
                    _LOGGER.warning("No %s service found over zeroconf", LABELS[kind])

    def _pinned(self, kind: str) -> str | None:
        return {
            "asr": self.settings.stt_name,
            "tts": self.settings.tts_name,
            "handle": self.settings.handle_name,
        }[kind]

    def _wanted(self, kind: str, service: FoundService) -> bool:
        pinned = self._pinned(kind)
        # DNS names are case-insensitive; otherwise the whole name must match.
        if pinned is not None and service.name.casefold() != pinned.casefold():
            return False
        wanted = self.settings.service_filter
        return not wanted or wanted in service.name

    async def uri(self, kind: str) -> str:
        entry = self._entries[kind]
        if entry.uri is None:
            await self.discover()
        if entry.uri is None:
            raise ServiceUnavailable(f"No {LABELS[kind]} service: give --{_FLAG[kind]}-uri")
        return entry.uri

    async def tts_streams(self, uri: str) -> bool:
        """Whether the TTS service takes streamed text (asked once per address)."""
        if uri not in self._tts_streaming:
            info = await describe(uri, timeout=5.0)
            streams = any(getattr(p, "supports_synthesize_streaming", False) for p in info.tts)
            if not streams:
                _LOGGER.info("The TTS service at %s does not stream: one request per sentence", uri)
            self._tts_streaming[uri] = streams
        return self._tts_streaming[uri]

    def is_down(self, kind: str) -> bool:
        return self._entries[kind].down

    def failed(self, kind: str, err: BaseException) -> None:
        entry = self._entries[kind]
        _LOGGER.error("%s service at %s failed: %s", LABELS[kind], entry.uri or "(unknown)", err)
        if not entry.down:
            entry.down = True
            entry.probe = asyncio.create_task(self._probe(kind), name=f"probe-{kind}")

    def ok(self, kind: str) -> None:
        entry = self._entries[kind]
        if entry.down:
            entry.down = False
            _LOGGER.info("%s service at %s is back", LABELS[kind], entry.uri)
        if entry.probe is not None and entry.probe is not asyncio.current_task():
            entry.probe.cancel()
        entry.probe = None

    async def _probe(self, kind: str) -> None:
        entry = self._entries[kind]
        delay = BACKOFF_START
        while entry.down:
            _LOGGER.info("Reconnecting to the %s service in %.0f s", LABELS[kind], delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            if not entry.given:
                entry.uri = None  # it may have moved: browse again
                await self.discover()
            if entry.uri is None:
                continue
            try:
                await describe(entry.uri, timeout=3.0)
            except VoiceError:
                continue
            self.ok(kind)

    async def close(self) -> None:
        for entry in self._entries.values():
            if entry.probe is not None:
                entry.probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await entry.probe

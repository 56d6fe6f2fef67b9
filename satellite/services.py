"""Where the standalone satellite's services are: a `discovery.pool.ServicePool` per kind.

Given URIs (`--stt-uri A,B`) are used as they are; a kind not given is found with zeroconf
(`discovery.browse.Browser`, browsing for as long as the satellite runs). Anyone on the network
may advertise one, so `--stt-name`/`--tts-name`/`--handle-name` pin a kind to one exact
instance name (and `--service-filter` narrows by part of the name); the browser already refuses
loopback and link-local adverts that this host did not announce.

Round-robin, failover and coming back after a failure are the pool's (see `discovery.pool`):
an instance that cannot be connected to is skipped within the turn, one that fails mid-turn is
tried last by later turns and asked `describe` before it gets a turn again. The conversation
service is sticky: a conversation's history lives in one instance.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING, TypeVar

from discovery.pool import ServicePool
from wyoming_core.client import ServiceUnavailable, VoiceError, describe

from .settings import TurnSettings

if TYPE_CHECKING:
    from discovery.browse import Browser, FoundService

T = TypeVar("T")

_LOGGER = logging.getLogger(__name__)

KINDS = ("asr", "tts", "handle")
LABELS = {"asr": "STT", "tts": "TTS", "handle": "handle"}
_FLAG = {"asr": "stt", "tts": "tts", "handle": "handle"}


class StageError(Exception):
    """A turn stage failed; names the service kind and the instance(s) it tried."""

    def __init__(self, kind: str, err: BaseException, tried: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.err = err
        self.tried = tried
        super().__init__(self.describe())

    def describe(self) -> str:
        """`handle service at tcp://... failed: ...` (every instance tried, if more than one)."""
        label = LABELS[self.kind]
        if len(self.tried) == 1:
            # One instance: its own error, not the pool's summary of it.
            cause = self.err.__cause__ if isinstance(self.err.__cause__, VoiceError) else self.err
            return f"{label} service at {self.tried[0]} failed: {cause}"
        if self.tried:
            return f"{label} service failed at {', '.join(self.tried)}: {self.err}"
        return f"{label} service failed: {self.err}"


class Services:
    """The standalone satellite's STT, TTS and handle services."""

    def __init__(self, settings: TurnSettings) -> None:
        self.settings = settings
        given = {"asr": settings.stt_uris, "tts": settings.tts_uris, "handle": settings.handle_uris}
        self._missing = [kind for kind in KINDS if not given[kind]]
        self.browser: Browser | None = None
        if self._missing:
            from discovery.browse import Browser  # only needed without explicit URIs

            self.browser = Browser()
        self.pools = {
            kind: ServicePool(
                kind,
                given[kind],
                browser=self.browser if not given[kind] else None,
                where=self._wanted(kind),
                sticky=kind == "handle",
                # Several STT/TTS instances: each request goes to the least loaded (describe's
                # `load`); the conversation stays with one (its memory).
                balance=kind != "handle",
            )
            for kind in KINDS
        }
        self._tts_streaming: dict[str, bool] = {}
        self._using: dict[str, str] = {}

    async def start(self) -> None:
        """Browse at start-up, not at the first wake, so the first turn does not wait for it."""
        if self.browser is None:
            return
        _LOGGER.info("Looking for %s over zeroconf", ", ".join(LABELS[k] for k in self._missing))
        try:
            await self.browser.start()
        except OSError as err:
            _LOGGER.warning("Zeroconf browsing failed: %s", err)
            self.browser = None
            for kind in self._missing:
                self.pools[kind].browser = None

    async def stop(self) -> None:
        if self.browser is not None:
            await self.browser.stop()

    def _pinned(self, kind: str) -> str | None:
        names = {"asr": self.settings.stt_name, "tts": self.settings.tts_name}
        return names.get(kind, self.settings.handle_name)

    def _wanted(self, kind: str) -> Callable[[FoundService], bool]:
        pinned, part = self._pinned(kind), self.settings.service_filter

        def wanted(service: FoundService) -> bool:
            # DNS names are case-insensitive; otherwise the whole name must match.
            if pinned is not None and service.name.casefold() != pinned.casefold():
                return False
            return not part or part in service.name

        return wanted

    async def _found(self, kind: str) -> None:
        """A kind to be discovered that has no instance yet: wait a while for one."""
        pool = self.pools[kind]
        if pool.uris() or pool.browser is None:
            return
        try:
            await pool.browser.wait_for(lambda _found: bool(pool.uris()), self.settings.discover_seconds)
        except TimeoutError:
            pinned = self._pinned(kind)
            if pinned is not None:
                _LOGGER.warning(
                    "No %s service named %r answers over zeroconf (--%s-name); "
                    "python -m discovery lists what is there",
                    LABELS[kind],
                    pinned,
                    _FLAG[kind],
                )
            raise ServiceUnavailable(
                f"none found over zeroconf; give --{_FLAG[kind]}-uri or see python -m discovery"
            ) from None

    def _log_using(self, kind: str, uri: str) -> None:
        """Which discovered instance a kind uses, said when it changes (given URIs: debug)."""
        if self._using.get(kind) == uri:
            return
        self._using[kind] = uri
        found = [s for s in self.browser.services if s.uri == uri] if self.browser is not None else []
        if found and self.pools[kind].browser is not None:
            _LOGGER.info("Using %s service %r at %s", LABELS[kind], found[0].name, uri)
        else:
            _LOGGER.debug("Using %s service at %s", LABELS[kind], uri)

    async def stream(
        self, kind: str, request: Callable[[str], AsyncIterator[T]], tried: list[str]
    ) -> AsyncGenerator[T, None]:
        """`request(uri)` through the kind's pool; a failure is a StageError naming what was
        tried. `tried` collects the instances asked, for the caller's own deadline (`timed_out`)."""

        def attempt(uri: str) -> AsyncIterator[T]:
            tried.append(uri)
            self._log_using(kind, uri)
            return request(uri)

        try:
            await self._found(kind)
            async for item in self.pools[kind].stream(attempt):
                yield item
        except VoiceError as err:
            raise StageError(kind, err, tuple(tried)) from err

    def at_fault(self, kind: str, tried: list[str], err: VoiceError) -> StageError:
        """The caller found the instance in use at fault (its deadline passed, its reply broke a
        bound): it is marked failed, as the pool marks one that timed out by itself."""
        if tried:
            self.pools[kind].mark_failed(tried[-1], err)
        return StageError(kind, err, tuple(tried[-1:]))

    async def tts_streams(self, uri: str) -> bool:
        """Whether the TTS service takes streamed text (asked once per address)."""
        if uri not in self._tts_streaming:
            info = await describe(uri, timeout=5.0)
            streams = any(getattr(p, "supports_synthesize_streaming", False) for p in info.tts)
            if not streams:
                _LOGGER.info("The TTS service at %s does not stream: one request per sentence", uri)
            self._tts_streaming[uri] = streams
        return self._tts_streaming[uri]

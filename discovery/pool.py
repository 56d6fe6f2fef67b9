"""Spread requests over several instances of one kind of service, and fail over.

    pool = ServicePool("asr", browser=browser)            # or ServicePool("asr", ["tcp://a:10300", ...])
    text = (await pool.call(lambda uri: transcribe(uri, pcm, fmt))).text
    async for item in pool.stream(lambda uri: transcribe_stream(uri, mic, fmt)):
        ...

Each call starts at the next instance (round-robin), so turns from many rooms spread over
every machine that runs the service. An instance that cannot be connected to is marked
failed and the *same* request goes to the next one, as nothing was sent yet. A failure
after the request started (a timeout, a dropped connection) is raised — the audio was
already spent — but the instance is marked failed, so the next turn goes elsewhere. Failed
instances are tried last until `retry_after` seconds have passed; then they are asked
`describe` before they get a request again, so one that still hangs costs no one a turn.

`sticky=True` keeps using the instance that answered last (moving only when it fails): a
conversation service keeps a conversation's history, so a satellite's turns stay with one.

`balance=True` spreads by what the instances report rather than by turn alone: before each
request the healthy instances are asked `describe` (all at once, within `balance_timeout`) and
the request starts at the least loaded, by the `load` field our services add to `info`
(streams and decodes under way, then the expected wait of a new request). Equal loads keep the turn
order, which starts at a random instance, so satellites started together do not all pick the
same one; an instance that reports no load counts as idle, one that does not answer in time as
the busiest (its request will tell whether it is down). An `overloaded` answer marks the
instance failed like any instance fault, so the next request goes elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from wyoming.info import Describe

from wyoming_core.client import (
    DESCRIBE_LIMITS,
    ConnectFailed,
    Connection,
    ServiceError,
    ServiceUnavailable,
    VoiceError,
    describe,
)
from wyoming_core.errors import INSTANCE_FAULTS

from .catalog import normalise_kind

if TYPE_CHECKING:
    from .browse import Browser, FoundService

T = TypeVar("T")

_LOGGER = logging.getLogger(__name__)

# Error codes that say the instance, not the request, is at fault.
_INSTANCE_ERROR_CODES = INSTANCE_FAULTS


class ServicePool:
    """Round-robin over the instances of one service kind, with failover."""

    def __init__(
        self,
        kind: str,
        uris: Sequence[str] | str = (),
        *,
        browser: Browser | None = None,
        where: Callable[[FoundService], bool] | None = None,
        retry_after: float = 30.0,
        sticky: bool = False,
        probe: Callable[[str], Awaitable[object]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        balance: bool = False,
        balance_timeout: float = 0.5,
    ) -> None:
        """`where` picks among the instances discovery finds, e.g. by language or model;
        `probe(uri)` (default: `describe` within 3 s) is how a failed instance shows it is back."""
        self.kind = normalise_kind(kind)
        self.where = where
        self.static_uris = [uris] if isinstance(uris, str) else list(uris)
        self.browser = browser
        self.retry_after = retry_after
        self.sticky = sticky
        self._probe = probe or _describes
        self._clock = clock
        self._failed_at: dict[str, float] = {}
        self.balance = balance
        self.balance_timeout = balance_timeout
        self._turns = itertools.count(random.randrange(1 << 16) if balance else 0)
        self._last_ok: str | None = None

    def uris(self) -> list[str]:
        """Given URIs first, then the answering instances discovery has found."""
        found = [
            s.uri
            for s in (self.browser.of_kind(self.kind) if self.browser is not None else [])
            if self.where is None or self.where(s)
        ]
        return list(dict.fromkeys([*self.static_uris, *found]))

    def is_failed(self, uri: str) -> bool:
        failed_at = self._failed_at.get(uri)
        return failed_at is not None and self._clock() - failed_at < self.retry_after

    def mark_failed(self, uri: str, reason: object = "") -> None:
        if not self.is_failed(uri):
            detail = f": {reason}" if reason else ""
            _LOGGER.warning("%s service %s is not answering%s", self.kind, uri, detail)
        self._failed_at[uri] = self._clock()

    def mark_ok(self, uri: str) -> None:
        if self._failed_at.pop(uri, None) is not None:
            _LOGGER.info("%s service %s is answering again", self.kind, uri)
        self._last_ok = uri

    def order(self) -> list[str]:
        """The instances to try for the next request: healthy ones from the next in turn (or,
        sticky, from the one that answered last), failed last."""
        uris = self.uris()
        if not uris:
            return []
        if self.sticky and self._last_ok in uris:
            turn = uris.index(self._last_ok)
        else:
            turn = next(self._turns) % len(uris)
        rotated = uris[turn:] + uris[:turn]
        return [u for u in rotated if not self.is_failed(u)] + [u for u in rotated if self.is_failed(u)]

    async def _ranked(self) -> list[str]:
        """`order()`, with `balance` the healthy instances least loaded first."""
        uris = self.order()
        healthy = [u for u in uris if not self.is_failed(u)]
        if not self.balance or len(healthy) < 2:
            return uris
        loads = await asyncio.gather(*(_reported_load(u, self.balance_timeout) for u in healthy))
        ranked = [u for _load, u in sorted(zip(loads, healthy, strict=True), key=lambda pair: pair[0])]
        return ranked + [u for u in uris if self.is_failed(u)]

    async def _probe_failed(self, uri: str) -> VoiceError | None:
        """For an instance that failed more than `retry_after` ago: ask it before trusting it
        with a request (a hung one would cost a turn); None when it answers or needs no asking."""
        if uri not in self._failed_at or self.is_failed(uri):
            return None
        try:
            await self._probe(uri)
        except VoiceError as err:
            self._failed_at[uri] = self._clock()  # still down: tried last for another while
            _LOGGER.debug("%s service %s is still not answering: %s", self.kind, uri, err)
            return err
        return None

    def _none_found(self) -> ServiceUnavailable:
        where = " (none found by zeroconf)" if self.browser is not None else ""
        return ServiceUnavailable(
            f"No {self.kind} service to ask{where}; run `python -m discovery` to see what is found"
        )

    def _all_failed(self, uris: list[str], last: VoiceError) -> ServiceUnavailable:
        return ServiceUnavailable(f"No {self.kind} service answered (tried {', '.join(uris)}): {last}")

    def _after_error(self, uri: str, err: VoiceError) -> None:
        if isinstance(err, ServiceError) and err.code not in _INSTANCE_ERROR_CODES:
            return  # the service answered: the request was refused, the instance is fine
        self.mark_failed(uri, err)

    async def call(self, request: Callable[[str], Awaitable[T]], *, replayable: bool = False) -> T:
        """`await request(uri)` on the next instance, moving on while none could be connected to.

        With `replayable` (the request's input can be sent again, e.g. text or a whole clip), a
        request that started and then failed also moves on to the next instance, and so does one
        an instance refused for its own fault (`overloaded`, `model-unavailable`, ...).
        """
        uris = await self._ranked()
        if not uris:
            raise self._none_found()
        last: VoiceError | None = None
        for uri in uris:
            if (down := await self._probe_failed(uri)) is not None:
                last = down
                continue
            try:
                result = await request(uri)
            except ConnectFailed as err:
                self.mark_failed(uri, err)
                last = err
                continue
            except VoiceError as err:
                self._after_error(uri, err)
                if replayable and (not isinstance(err, ServiceError) or err.code in _INSTANCE_ERROR_CODES):
                    last = err
                    continue
                raise
            self.mark_ok(uri)
            return result
        assert last is not None
        raise self._all_failed(uris, last) from last

    async def stream(self, request: Callable[[str], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Yield from `request(uri)`, moving on to the next instance only while nothing was sent."""
        uris = await self._ranked()
        if not uris:
            raise self._none_found()
        last: VoiceError | None = None
        for uri in uris:
            if (down := await self._probe_failed(uri)) is not None:
                last = down
                continue
            started = False
            items = request(uri)
            try:
                async for item in items:
                    started = True
                    yield item
            except ConnectFailed as err:
                self.mark_failed(uri, err)
                if started:
                    raise
                last = err
                continue
            except VoiceError as err:
                self._after_error(uri, err)
                raise
            finally:
                # Cut short (the caller stopped reading): the request's connection closes now.
                close = getattr(items, "aclose", None)
                if close is not None:
                    await close()
            self.mark_ok(uri)
            return
        assert last is not None
        raise self._all_failed(uris, last) from last


async def _describes(uri: str) -> None:
    await describe(uri, timeout=3.0)


async def _reported_load(uri: str, timeout: float) -> tuple[float, float]:
    """(streams and decodes under way, expected wait in seconds) from the `load` field of the
    instance's `info`: (0, 0) when it reports none, infinite when it does not answer in time."""
    busiest = (math.inf, math.inf)
    try:
        async with asyncio.timeout(timeout), Connection(uri, timeout, limits=DESCRIBE_LIMITS) as conn:
            await conn.send(Describe())
            while (event := await conn.receive()).type != "info":
                pass
    except (VoiceError, TimeoutError, OSError):
        return busiest
    load = event.data.get("load")
    if not isinstance(load, dict):
        return (0.0, 0)
    try:
        work = sum(int(load.get(key) or 0) for key in ("streams", "running", "queued"))
        return (float(work), float(load.get("expected_wait") or 0.0))
    except (TypeError, ValueError):  # a load field we cannot read: as if it reported none
        return (0.0, 0)

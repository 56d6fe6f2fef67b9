"""One connection to Home Assistant's MCP server (`/api/mcp`, streamable HTTP, the official `mcp` client).

HA's MCP server is stateless (every request stands alone), so a broken connection costs
nothing to rebuild: a supervisor task keeps a client session open, lists the tools, refreshes
them every few minutes, and reconnects with backoff when a call or a refresh fails. Callers
never wait on a dead connection for long: a call while disconnected cuts the backoff short,
waits briefly for the reconnection and otherwise fails with a `HomeError` in plain words.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from .entities import ExposedEntity, parse_live_context
from .settings import HomeSettings

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
# How long a call waits for a lost connection to come back before it gives up.
RECONNECT_WAIT = 2.0
MAX_BACKOFF = 30.0
LIVE_CONTEXT = "GetLiveContext"


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    # The tool's JSON schema for its arguments.
    schema: dict[str, Any] = field(compare=False)


@dataclass(frozen=True)
class ToolResult:
    # False when HA reported the call as an error (the text says why).
    ok: bool
    # The parsed JSON HA answered with (or the plain text, if it was not JSON).
    data: Any
    text: str


class HomeError(Exception):
    """Home Assistant could not be asked: `kind` is unreachable, unauthorized, not-found or failed."""

    def __init__(self, kind: str, cause: str) -> None:
        super().__init__(cause)
        self.kind = kind
        self.cause = cause


def _leaves(err: BaseException) -> list[BaseException]:
    """The real errors inside the exception groups anyio wraps them in."""
    if isinstance(err, BaseExceptionGroup):
        return [leaf for sub in err.exceptions for leaf in _leaves(sub)]
    return [err]


def classify(err: BaseException, url: str) -> HomeError:
    """What went wrong, in words an HA user can act on (never the token)."""
    leaves = _leaves(err)
    for leaf in leaves:
        if isinstance(leaf, HomeError):
            return leaf
        if isinstance(leaf, httpx.HTTPStatusError):
            status = leaf.response.status_code
            if status in (401, 403):
                return HomeError(
                    "unauthorized",
                    f"Home Assistant at {url} rejected the access token ({status}): create a new "
                    "long-lived access token (your profile -> Security) and pass it with --ha-token",
                )
            if status == 404:
                return HomeError(
                    "not-found",
                    f"Home Assistant at {url} has no MCP server (404 on /api/mcp): add the "
                    "'Model Context Protocol Server' integration in Settings -> Devices & services",
                )
            return HomeError("failed", f"Home Assistant at {url} answered with status {status}")
    for leaf in leaves:
        if isinstance(leaf, httpx.TimeoutException | TimeoutError):
            return HomeError("unreachable", f"Home Assistant at {url} did not answer in time")
        if isinstance(leaf, httpx.TransportError | OSError):
            return HomeError("unreachable", f"Home Assistant is unreachable at {url} ({type(leaf).__name__})")
    first = leaves[0] if leaves else err
    return HomeError("failed", f"talking to Home Assistant at {url} failed: {type(first).__name__}: {first}")


def _result(raw: Any) -> ToolResult:
    text = "".join(getattr(part, "text", "") or "" for part in getattr(raw, "content", None) or [])
    try:
        data: Any = json.loads(text) if text else None
    except ValueError:
        data = text
    ok = not bool(getattr(raw, "isError", False))
    if isinstance(data, dict) and data.get("success") is False:
        ok = False
    return ToolResult(ok=ok, data=data, text=text)


@contextlib.asynccontextmanager
async def _transport(settings: HomeSettings, sse: bool) -> AsyncIterator[tuple[Any, Any]]:
    """Streamable HTTP (`/api/mcp`), or the SSE transport older Home Assistants serve
    (2025.4: `/mcp_server/sse` only)."""
    headers = {"Authorization": f"Bearer {settings.token}"}
    if sse:
        from mcp.client.sse import sse_client

        async with sse_client(settings.sse_url, headers=headers, timeout=CONNECT_TIMEOUT) as (r, w):
            yield r, w
        return
    from mcp.client.streamable_http import streamable_http_client

    timeout = httpx.Timeout(30.0, connect=CONNECT_TIMEOUT)
    async with (
        httpx.AsyncClient(headers=headers, timeout=timeout) as client,
        streamable_http_client(settings.mcp_url, http_client=client, terminate_on_close=False) as (r, w, _),
    ):
        yield r, w


class HomeLink:
    """Shared by every connection of a service. `start()` it once; `close()` on shutdown."""

    def __init__(
        self,
        settings: HomeSettings,
        *,
        refresh_seconds: float = 300.0,
        call_timeout: float = 8.0,
    ) -> None:
        self.settings = settings
        self.refresh_seconds = refresh_seconds
        self.call_timeout = call_timeout
        self.tools: tuple[ToolInfo, ...] = ()
        # The last reason the connection failed (None while connected or never tried).
        self.error: HomeError | None = None
        self._session: Any = None
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._broken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._logged_kind: str | None = None
        self._was_up = False
        # Found at the first connection: this HA only speaks the SSE transport.
        self._sse = False
        self._entities: list[ExposedEntity] = []
        self._entities_at = -1e9
        self._entities_lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def tool(self, name: str) -> ToolInfo | None:
        return next((tool for tool in self.tools if tool.name == name), None)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="home-assistant-link")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._ready.clear()

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self.connected

    # -- the supervisor -----------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._session_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # every failure is classified and retried
                self.error = classify(err, self.url)
                self._report_failure(self.error)
            if self._was_up:  # it was connected: the first retry comes quickly
                delay, self._was_up = 1.0, False
            self._session = None
            self._ready.clear()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _session_once(self) -> None:
        try:
            await self._session_on(sse=self._sse)
        except Exception as err:
            if self._sse or self._was_up or classify(err, self.url).kind not in ("not-found", "failed"):
                raise
            # No /api/mcp (the client hears 404 as "session terminated"): an HA before 2025.5
            # serves MCP over SSE only.
            await self._session_on(sse=True)

    async def _session_on(self, sse: bool) -> None:
        from mcp import ClientSession

        async with _transport(self.settings, sse) as (read, write), ClientSession(read, write) as session:
            await asyncio.wait_for(session.initialize(), self.call_timeout)
            await self._load_tools(session)
            self._session, self.error = session, None
            self._broken.clear()
            self._ready.set()
            self._was_up, self._sse = True, sse
            _LOGGER.info("Connected to Home Assistant at %s (%d tools)", self.url, len(self.tools))
            self._logged_kind = None
            while True:
                try:
                    await asyncio.wait_for(self._broken.wait(), self.refresh_seconds)
                except TimeoutError:
                    await self._load_tools(session)
                    continue
                raise self.error or HomeError("unreachable", f"lost the connection to {self.url}")

    async def _load_tools(self, session: Any) -> None:
        listing = await asyncio.wait_for(session.list_tools(), self.call_timeout)
        tools = tuple(ToolInfo(t.name, t.description or "", dict(t.inputSchema or {})) for t in listing.tools)
        if self.tools and {t.name for t in tools} != {t.name for t in self.tools}:
            _LOGGER.info("Home Assistant's tools changed: now %d", len(tools))
        self.tools = tools

    def _report_failure(self, error: HomeError) -> None:
        """Once per kind of failure, not once per retry."""
        if error.kind != self._logged_kind:
            _LOGGER.warning("%s; retrying in the background", error.cause)
            self._logged_kind = error.kind
        else:
            _LOGGER.debug("Still no Home Assistant: %s", error.cause)

    # -- calls ----------------------------------------------------------------------------------------

    async def _live_session(self, timeout: float) -> Any:
        if not self.connected:
            self._wake.set()  # try now, not at the end of the backoff
            await self.wait_connected(min(RECONNECT_WAIT, timeout))
        if self._session is None:
            raise self.error or HomeError("unreachable", f"Home Assistant at {self.url} is not connected")
        return self._session

    async def call(self, name: str, arguments: dict[str, Any], timeout: float | None = None) -> ToolResult:
        """Run one tool; HomeError when HA could not be asked (an error HA reports is a result)."""
        limit = self.call_timeout if timeout is None else timeout
        started = time.monotonic()
        session = await self._live_session(limit)
        remaining = max(0.5, limit - (time.monotonic() - started))
        try:
            raw = await asyncio.wait_for(session.call_tool(name, arguments), remaining)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the connection is suspect: rebuild it for the next call
            error = classify(err, self.url)
            if isinstance(err, TimeoutError):
                error = HomeError("unreachable", f"Home Assistant at {self.url} did not answer in time")
            self.error = error
            self._ready.clear()
            self._broken.set()
            raise error from None
        return _result(raw)

    async def entities(self, max_age: float = 30.0) -> list[ExposedEntity]:
        """The exposed entities with names, areas and states (cached for `max_age` seconds)."""
        if self.tool(LIVE_CONTEXT) is None and self.connected:
            return []
        async with self._entities_lock:
            if time.monotonic() - self._entities_at <= max_age:
                return self._entities
            result = await self.call(LIVE_CONTEXT, {})
            data = result.data
            text = data.get("result") if isinstance(data, dict) else None
            self._entities = parse_live_context(text) if isinstance(text, str) and result.ok else []
            self._entities_at = time.monotonic()
            return self._entities

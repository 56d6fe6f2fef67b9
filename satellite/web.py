"""The satellite's status page on `--http`: GET / (satellite/page.html), live over GET /ws.

What the page shows is pushed (no polling): state changes with their reason, barge-ins, the
partial transcripts then the final one, the reply as its sentences come, the stages of the last
20 turns, the microphone and speaker levels (at most 10 a second, computed only while a page is
connected). Controls are POSTs (nothing
changes on a GET) to /control/{talk,stop,mute,unmute,volume?percent=N}, with the
`X-Status-Page` header (a custom header: a browser cannot send it cross-site without a CORS
preflight, which is never answered) and, when `--http-token` is set, `X-Token`; bound to a
non-loopback address without a token the controls are refused. Messages from the page are not
read (at most 1 KiB each, then the socket closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import time
from collections import deque
from importlib.resources import files
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from .events import Event
from .services import Services
from .state import State
from .vad import level_dbfs

if TYPE_CHECKING:
    from .core import Satellite

_LOGGER = logging.getLogger(__name__)

LEVELS_PER_SECOND = 10
MAX_CLIENTS = 8
MAX_QUEUED = 200  # messages waiting for one slow page; more and it is disconnected
MAX_MESSAGE_BYTES = 1024  # from a page (it sends nothing we read)
MAX_TEXT = 4000  # characters of a transcript or reply sent to a page
TOKEN_HEADER = "X-Token"
PAGE_HEADER = "X-Status-Page"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatusPage:
    """Routes added to the --http app before it starts; the satellite is attached once built."""

    def __init__(self, host: str, token: str | None, services: dict[str, list[str]]) -> None:
        # What the satellite was told to use; standalone, the pools' live view replaces it.
        self.token = token or None
        self.loopback = is_loopback(host)
        self.services = services
        self.sat: Satellite | None = None
        self._clients: set[asyncio.Queue[str | None]] = set()
        self._transcript = ""
        self._reply: list[str] = []
        self._turns: deque[dict[str, object]] = deque(maxlen=20)
        self._history: deque[dict[str, object]] = deque(maxlen=30)
        self._next_level = 0.0

    # -- wiring -----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._socket)
        app.router.add_post("/control/{action}", self._control)

    def attach(self, sat: Satellite) -> None:
        self.sat = sat
        sat.sm.on_change(self._on_state)
        sat.events.watch(self._on_event)

    # -- what happens -----------------------------------------------------------------------

    def _on_state(self, old: State, new: State) -> None:
        assert self.sat is not None
        if new is State.LISTENING:  # a new request: the page's transcript and reply start over
            self._transcript, self._reply = "", []
        entry = {"type": "state", "state": new.name.lower(), "label": new.value, "why": self.sat.sm.why}
        self._history.append({**entry, "at": time.time()})
        self._send({**entry, "at": time.time()})
        if new is State.WAITING and self._clients:  # a turn is over: which services answered
            self._send({"type": "services", "services": self._services()})

    def _on_event(self, event: Event) -> None:
        if event.kind == "mic":
            self._on_mic(event)
        elif event.kind == "partial":
            self._send({"type": "partial", "text": str(event.data.get("text", ""))[:MAX_TEXT]})
        elif event.kind == "barge-in":
            entry = {"type": "barge-in", "why": str(event.data.get("trigger", "")), "at": event.at}
            self._history.append(entry)
            self._send(entry)
        elif event.kind == "transcript":
            self._transcript = str(event.data.get("text", ""))[:MAX_TEXT]
            self._send({"type": "transcript", "text": self._transcript})
        elif event.kind == "sentence":
            text = str(event.data.get("text", "")).strip()
            if text and sum(map(len, self._reply)) < MAX_TEXT:
                self._reply.append(text)
                self._send({"type": "sentence", "text": text})
        elif event.kind == "timing":
            turn = {"at": event.at, **event.data}
            self._turns.append(turn)
            self._send({"type": "timing", "turn": turn})

    def _on_mic(self, event: Event) -> None:
        # Only while a page is connected, and at most LEVELS_PER_SECOND times a second.
        if not self._clients:
            return
        now = time.monotonic()
        if now < self._next_level:
            return
        self._next_level = now + 1 / LEVELS_PER_SECOND
        audio = event.data.get("audio")
        level = level_dbfs(audio) if isinstance(audio, bytes) and audio else -120.0
        assert self.sat is not None
        player = self.sat.player
        player.metering = True
        speaker = player.level if player.busy else -120.0
        self._send({"type": "level", "mic": round(level, 1), "speaker": round(speaker, 1)})

    def _send(self, message: dict[str, object]) -> None:
        if not self._clients:
            return
        text = json.dumps(message, ensure_ascii=False)
        for queue in list(self._clients):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:  # a page that does not keep up is let go
                self._clients.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)

    def snapshot(self) -> dict[str, object]:
        sat = self.sat
        state = sat.sm.state if sat is not None else None
        return {
            "type": "snapshot",
            "name": sat.settings.name if sat is not None else "",
            "state": state.name.lower() if state is not None else "starting",
            "label": state.value if state is not None else "starting",
            "why": sat.sm.why if sat is not None else "",
            "transcript": self._transcript,
            "reply": list(self._reply),
            "turns": list(self._turns),
            "history": list(self._history),
            "services": self._services(),
            "controls": self._controls_open(),
            **self._settings(),
            "token": self.token is not None,
        }

    def _services(self) -> dict[str, list[dict[str, object]]]:
        """Each kind's instances and whether they answer (standalone: the failover pools, with
        what discovery found); else the addresses the satellite was given."""
        services = getattr(self.sat.backend, "services", None) if self.sat is not None else None
        if not isinstance(services, Services):
            return {kind: [{"uri": uri, "ok": None} for uri in uris] for kind, uris in self.services.items()}
        names = {"asr": "speech-to-text", "tts": "text-to-speech", "handle": "conversation"}
        return {
            names.get(kind, kind): [{"uri": uri, "ok": not pool.is_failed(uri)} for uri in pool.uris()]
            for kind, pool in services.pools.items()
        }

    def _settings(self) -> dict[str, object]:
        sat = self.sat
        if sat is None:
            return {"muted": False, "volume": 100}
        return {"muted": sat.muted, "volume": round(sat.player.volume * 100)}

    def _controls_open(self) -> bool:
        return self.loopback or self.token is not None

    # -- HTTP -------------------------------------------------------------------------------

    async def _page(self, _request: web.Request) -> web.Response:
        html = files("satellite").joinpath("page.html").read_text(encoding="utf-8")
        response = web.Response(text=html, content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        )
        return response

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if len(self._clients) >= MAX_CLIENTS:
            raise web.HTTPServiceUnavailable(text="too many status pages open")
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=30.0)
        await ws.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue(MAX_QUEUED)
        queue.put_nowait(json.dumps(self.snapshot(), ensure_ascii=False))
        self._clients.add(queue)
        sender = asyncio.create_task(self._pump(ws, queue))
        try:
            async for message in ws:  # nothing is read: only watch for close and errors
                if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._clients.discard(queue)
            if not self._clients and self.sat is not None:
                self.sat.player.metering = False  # no page: no speaker level either
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            await ws.close()
        return ws

    async def _pump(self, ws: web.WebSocketResponse, queue: asyncio.Queue[str | None]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while (text := await queue.get()) is not None:
                await ws.send_str(text)
        await ws.close()

    async def _control(self, request: web.Request) -> web.Response:
        if request.headers.get(PAGE_HEADER) != "1":
            raise web.HTTPForbidden(text=f"controls need the {PAGE_HEADER} header")
        if not self._controls_open():
            why = "controls are off: --http is not a loopback address and there is no --http-token"
            raise web.HTTPForbidden(text=why)
        if self.token is not None:
            given = request.headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                raise web.HTTPUnauthorized(text="wrong or missing token")
        sat = self.sat
        if sat is None:
            raise web.HTTPServiceUnavailable(text="the satellite is starting")
        action = request.match_info["action"]
        if action == "stop":
            done = await stop_reply(sat)
        elif action == "talk":
            done = await push_to_talk(sat)
        elif action in ("mute", "unmute"):
            done = sat.muted != (action == "mute")
            sat.muted = action == "mute"
            _LOGGER.info("Microphone %s from the status page", "muted" if sat.muted else "unmuted")
        elif action == "volume":
            try:
                volume = int(request.query.get("percent", ""))
            except ValueError:
                raise web.HTTPBadRequest(text="volume needs ?percent=0..100") from None
            if not 0 <= volume <= 100:
                raise web.HTTPBadRequest(text="volume needs ?percent=0..100")
            done = round(sat.player.volume * 100) != volume
            sat.player.volume = volume / 100
        else:
            raise web.HTTPNotFound(text=f"no control {action!r}")
        _LOGGER.info("Status page: %s (%s)", action, "done" if done else "nothing to do")
        self._send({"type": "settings", **self._settings()})
        return web.json_response({"action": action, "done": done})


async def stop_reply(sat: Satellite) -> bool:
    """Silence the speaker; a turn being answered is dropped and the satellite waits again."""
    playing = sat.player.busy
    sat.player.stop()
    if sat.sm.is_(State.THINKING, State.SPEAKING):
        await sat.backend.barge_in()
        sat.idle("stopped from the status page")
        return True
    return playing


async def push_to_talk(sat: Satellite) -> bool:
    """Start a turn as if the wake word had been heard (only while waiting for it)."""
    if not sat.sm.is_(State.WAITING, State.FOLLOW_UP) or not sat.backend.can_start_turn():
        return False
    await sat.wake_up("push to talk")
    return True

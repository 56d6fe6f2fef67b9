"""Run `ha_driver.py` in a Home Assistant venv and talk to it from the main venv's tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.services import ROOT, ServiceProcess

# Each version has its own venv, made by scripts/setup-ha.sh. 2025.4.4 is the last release
# before streaming TTS; 2026.2.3 is the last one for Python 3.13 and streams TTS input.
HA_VERSIONS = ("2025.4.4", "2026.2.3")
HA_VENVS = Path(os.environ.get("HA_VENVS", ROOT / ".venv-ha"))
DRIVER = Path(__file__).with_name("ha_driver.py")


def ha_python(version: str) -> Path:
    return HA_VENVS / version / "bin" / "python"


def ha_ready(version: str) -> bool:
    """setup-ha.sh writes the marker only once every requirement is installed."""
    return ha_python(version).is_file() and (HA_VENVS / version / ".ha-ready").is_file()


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


class DriverError(AssertionError):
    """An op failed inside Home Assistant (the message carries HA's traceback)."""


class HomeAssistant:
    """One headless Home Assistant process driven line by line (see ha_driver.py)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.config_dir = Path(tempfile.mkdtemp(prefix=f"ha-{version}-"))
        self.log_path = self.config_dir / "driver.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.boot_seconds = 0.0
        self._next_id = 0
        self._lock = asyncio.Lock()
        # Config entries already added, by port: tests share one entry per service.
        self.entries: dict[int, dict[str, Any]] = {}

    async def start(self, timeout: float = 120.0) -> HomeAssistant:
        log = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230 - owned by the process
        self.proc = await asyncio.create_subprocess_exec(
            str(ha_python(self.version)),
            str(DRIVER),
            str(self.config_dir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            limit=16 * 1024 * 1024,
        )
        log.close()  # the child has its own copy
        hello = await self._read_line(timeout)
        if not hello.get("ready"):
            raise RuntimeError(f"Home Assistant did not boot: {hello}\n{self.log_tail()}")
        assert hello["version"] == self.version, hello
        self.boot_seconds = float(hello["boot_seconds"])
        return self

    async def _read_line(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise TimeoutError(f"Home Assistant silent for {timeout} s:\n{self.log_tail()}") from None
        if not line:
            raise RuntimeError(f"Home Assistant exited:\n{self.log_tail()}")
        result: dict[str, Any] = json.loads(line)
        return result

    async def call(self, op: str, timeout: float = 180.0, **args: Any) -> dict[str, Any]:
        """Run one op in HA; raise DriverError with HA's traceback if it failed."""
        assert self.proc is not None and self.proc.stdin is not None
        async with self._lock:
            self._next_id += 1
            request = {"id": self._next_id, "op": op, "timeout": timeout, **args}
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            await self.proc.stdin.drain()
            # The driver has its own timeout per op; this one only catches a hung process.
            reply = await self._read_line(timeout + 30)
        assert reply["id"] == request["id"], reply
        if not reply["ok"]:
            raise DriverError(f"HA {self.version} op {op} failed: {reply['error']}\n{reply.get('traceback')}")
        result: dict[str, Any] = reply["result"]
        return result

    async def entry(self, service: ServiceProcess) -> dict[str, Any]:
        """The config entry for a service, added through the config flow on first use."""
        if service.port not in self.entries:
            result = await self.call("add_entry", host="127.0.0.1", port=service.port)
            assert result["type"] == "create_entry", (result, self.log_tail())
            self.entries[service.port] = result
        return self.entries[service.port]

    async def entity_id(self, service: ServiceProcess, domain: str) -> str:
        entities = [e for e in (await self.entry(service))["entities"] if e["domain"] == domain]
        assert entities, f"no {domain} entity for {service.module}: {self.entries[service.port]}"
        return str(entities[0]["entity_id"])

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await self.call("stop", timeout=10)
            await asyncio.wait_for(self.proc.wait(), 30)
        except (Exception, asyncio.CancelledError):
            self.proc.kill()
            await self.proc.wait()


@dataclass(frozen=True)
class HomeEntity:
    """One exposed device of the test home (op home_setup in ha_driver.py)."""

    entity_id: str  # light.kitchen_lights
    domain: str  # light | switch
    name: str  # Kitchen Lights: the name Assist and the MCP tools know it by
    area: str  # Kitchen
    area_id: str
    dimmable: bool  # brightness (HassLightSet)
    power_entity_id: str  # the input_boolean behind it (not exposed)
    level_entity_id: str | None  # the input_number holding its brightness, if dimmable


@dataclass(frozen=True)
class EntityState:
    entity_id: str
    state: str | None  # None: no such entity
    attributes: dict[str, Any]
    reached: bool = True  # wait_state: the wanted state came before the deadline


@dataclass(frozen=True)
class Home:
    """A Home Assistant with a small home controlled through Assist and its MCP server,
    and a long-lived access token for it (what a user sets up by hand, see README)."""

    ha: HomeAssistant
    url: str  # http://127.0.0.1:PORT
    mcp_url: str | None  # streamable HTTP (.../api/mcp); None: HA 2025.4.4 only serves SSE
    mcp_sse_url: str  # the SSE transport (.../mcp_server/sse), served by every tested version
    token: str = field(repr=False)  # kept out of assertion messages
    entities: tuple[HomeEntity, ...] = ()
    setup_seconds: float = 0.0

    @property
    def version(self) -> str:
        return self.ha.version

    @classmethod
    async def setup(cls, ha: HomeAssistant, extra_lights: int = 0) -> Home:
        """Run home_setup in this HA (once; a second call gives the same home back).
        `extra_lights` more exposed lights (Hallway Ceiling Light, ...) make a bigger home."""
        result = await ha.call("home_setup", extra_lights=extra_lights)
        return cls(
            ha=ha,
            url=result["url"],
            mcp_url=result["mcp_url"],
            mcp_sse_url=result["mcp_sse_url"],
            token=result["token"],
            entities=tuple(HomeEntity(**entity) for entity in result["entities"]),
            setup_seconds=float(result["seconds"]),
        )

    def entity(self, name: str) -> HomeEntity:
        """The entity Assist knows as `name` (e.g. "Kitchen Lights")."""
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise KeyError(f"no entity named {name!r} in the test home: {[e.name for e in self.entities]}")

    def entity_id(self, name: str) -> str:
        return self.entity(name).entity_id

    async def state(self, entity_id: str) -> EntityState:
        """The entity's state now (state None if it does not exist)."""
        result = await self.ha.call("entity_state", entity_id=entity_id)
        return EntityState(entity_id, result["state"], result["attributes"])

    async def wait_state(
        self, entity_id: str, state: str, timeout: float = 30.0, attributes: dict[str, Any] | None = None
    ) -> EntityState:
        """Wait in HA until the entity has `state` (and these attribute values); the result
        says whether it got there (`reached`) and what it was then. Ops run one at a time:
        while this waits, nothing else can be asked of this HA through the driver."""
        result = await self.ha.call(
            "wait_state",
            timeout=timeout + 30,
            entity_id=entity_id,
            state=state,
            wait_seconds=timeout,
            attributes=attributes or {},
        )
        return EntityState(entity_id, result["state"], result["attributes"], bool(result["reached"]))

    async def assert_state(
        self, entity_id: str, state: str, timeout: float = 30.0, attributes: dict[str, Any] | None = None
    ) -> EntityState:
        """wait_state, failing the test with the state it had if it never came."""
        result = await self.wait_state(entity_id, state, timeout, attributes)
        assert result.reached, f"{entity_id} never became {state} {attributes or ''} in {timeout} s: {result}"
        return result

    async def call_service(self, domain: str, service: str, data: dict[str, Any] | None = None) -> None:
        """A service call in HA, as the UI's buttons do (returns once it is done)."""
        await self.ha.call("call_service", domain=domain, service=service, data=data or {})

    async def set_on(self, name: str, on: bool) -> None:
        """Switch a device through its helper (not through Assist) and wait for its state."""
        entity = self.entity(name)
        await self.call_service(
            "input_boolean", "turn_on" if on else "turn_off", {"entity_id": entity.power_entity_id}
        )
        await self.assert_state(entity.entity_id, "on" if on else "off")

    async def reset(self) -> None:
        """Every device off: a known state for a test to start from (the home is shared)."""
        await self.call_service(
            "input_boolean", "turn_off", {"entity_id": [entity.power_entity_id for entity in self.entities]}
        )
        for entity in self.entities:
            await self.assert_state(entity.entity_id, "off")

    @contextlib.asynccontextmanager
    async def mcp_session(self, token: str | None = None) -> AsyncIterator[Any]:
        """An initialized `mcp.ClientSession` (the official client) on HA's MCP server:
        streamable HTTP where HA has it, else SSE (2025.4.4)."""
        from mcp import ClientSession
        from mcp.client.sse import sse_client
        from mcp.client.streamable_http import streamable_http_client

        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        async with contextlib.AsyncExitStack() as stack:
            if self.mcp_url:
                # The MCP transports' usual timeouts: 30 s, and 5 min to read a response stream.
                http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=300))
                await stack.enter_async_context(http)
                streams = await stack.enter_async_context(
                    streamable_http_client(self.mcp_url, http_client=http)
                )
            else:
                streams = await stack.enter_async_context(sse_client(self.mcp_sse_url, headers=headers))
            session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
            await session.initialize()
            yield session

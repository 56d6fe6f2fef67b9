"""Run `ha_driver.py` in a Home Assistant venv and talk to it from the main venv's tests."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

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

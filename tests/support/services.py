"""Start the project's real services as subprocesses on 127.0.0.1 for tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from wyoming_core import readiness
from wyoming_core.client import VoiceError, describe

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """`python -m MODULE --uri tcp://127.0.0.1:PORT ARGS...`, logs kept in a file."""

    def __init__(self, module: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.module = module
        self.args = list(args)
        self.port = free_port()
        self.uri = f"tcp://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.log_path = Path(tempfile.mkstemp(prefix=f"{module}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        # Run in the child before the service starts (e.g. to lower its open-file limit).
        self.preexec: Callable[[], None] | None = None

    def start(self) -> ServiceProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--uri", self.uri, *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=self.env,
            preexec_fn=self.preexec,
        )
        return self

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited early:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"{self.module} did not listen within {timeout} s:\n{self.log()}")

    async def wait_ready(self, timeout: float = 120.0, marker: str | None = None) -> None:
        """Wait until `describe` says the service is ready: it answers and loads nothing any more
        (wyoming_core.readiness: a model or voice being loaded says `[loading]`).

        `marker`: wait for that log line instead. Only for what describe cannot tell: the
        conversation service's model being warm (`is loaded and warm`).
        """
        if marker is not None:
            await self.wait_log(marker, timeout)
            return
        deadline = time.monotonic() + timeout
        while True:
            self._check_running()
            try:
                info = await describe(self.uri, timeout=2.0)
            except VoiceError:
                pass
            else:
                if readiness.is_ready(info):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.module} not ready within {timeout} s:\n{self.log()}")
            await asyncio.sleep(0.1)

    async def wait_log(self, marker: str, timeout: float = 120.0) -> None:
        """Wait for a log line containing `marker`."""
        deadline = time.monotonic() + timeout
        while marker not in self.log():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {marker!r} from {self.module} within {timeout} s:\n{self.log()}")
            self._check_running()
            await asyncio.sleep(0.1)

    def _check_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.module} exited:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

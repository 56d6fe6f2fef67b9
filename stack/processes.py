"""Child processes started and stopped together, their output prefixed by name."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

_LOGGER = logging.getLogger(__name__)

LineHook = Callable[[str, str], None]


@dataclass(frozen=True)
class Program:
    label: str
    argv: tuple[str, ...]


class ProcessGroup:
    """Starts programs, prefixes their output with `label |`, stops them all on the way out."""

    def __init__(self, output: TextIO = sys.stderr, on_line: LineHook | None = None) -> None:
        self.output = output
        self.on_line = on_line
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._pumps: list[asyncio.Task[None]] = []
        self._width = 9

    async def start(self, program: Program) -> asyncio.subprocess.Process:
        self._width = max(self._width, len(program.label))
        proc = await asyncio.create_subprocess_exec(
            *program.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Own session: Ctrl-C reaches only us, and we stop the children in order.
            start_new_session=True,
        )
        self._procs[program.label] = proc
        assert proc.stdout is not None
        self._pumps.append(asyncio.create_task(self._pump(program.label, proc.stdout)))
        return proc

    async def _pump(self, label: str, stream: asyncio.StreamReader) -> None:
        prefix = f"{label:<{self._width}} | "
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            print(prefix + text, file=self.output, flush=True)
            if self.on_line is not None:
                self.on_line(label, text)

    async def first_exit(self, labels: Sequence[str] | None = None) -> tuple[str, int]:
        """Wait until one of the programs exits: (label, exit code)."""
        waits = {
            asyncio.ensure_future(proc.wait()): label
            for label, proc in self._procs.items()
            if labels is None or label in labels
        }
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        task = done.pop()
        return waits[task], task.result()

    async def wait(self, label: str) -> int:
        return await self._procs[label].wait()

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to all (the satellite first: it uses the others), SIGKILL after `timeout`."""
        running = [(label, p) for label, p in reversed(self._procs.items()) if p.returncode is None]
        for label, proc in running:
            _LOGGER.info("Stopping %s", label)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for label, proc in running:
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                _LOGGER.warning("%s did not stop within %g s; killing it", label, timeout)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        # Let the last lines of output through.
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for label, proc in running:
            if proc.returncode:
                _LOGGER.warning("%s exited with code %s", label, proc.returncode)

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

_BLOCK = 64 * 1024
MAX_LINE_BYTES = 8 * 1024  # longer lines are cut (a child's log line is never that long on purpose)


class LineCutter:
    """Bytes in, whole text lines out, each cut to `limit` bytes; memory bounded by `limit`."""

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self.limit = limit
        self._head = bytearray()  # the start of the current line, at most `limit` bytes
        self._dropped = 0  # bytes of the current line beyond `limit`

    def feed(self, data: bytes) -> list[str]:
        out: list[str] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self._take(data[start:end])
            out.append(self._line())
            start = end + 1
        self._take(data[start:])
        return out

    def close(self) -> list[str]:
        """The last line, if the output did not end with a newline."""
        return [self._line()] if self._head or self._dropped else []

    def _take(self, part: bytes) -> None:
        room = self.limit - len(self._head)
        self._head += part[:room]
        self._dropped += max(0, len(part) - room)

    def _line(self) -> str:
        text = self._head.decode(errors="replace").rstrip()
        if self._dropped:
            text += f" … ({self._dropped} more bytes cut)"
        self._head.clear()
        self._dropped = 0
        return text


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
        # Read in blocks, not readline(): a line over the reader's 64 KiB limit would end the
        # pump, and the child, its output no longer read, would block on its next write.
        prefix = f"{label:<{self._width}} | "
        lines = LineCutter()
        while True:
            block = await stream.read(_BLOCK)
            for text in lines.feed(block) if block else lines.close():
                print(prefix + text, file=self.output, flush=True)
                if self.on_line is not None:
                    self.on_line(label, text)
            if not block:
                return

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

    def returncode(self, label: str) -> int | None:
        """None while the program runs."""
        return self._procs[label].returncode

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

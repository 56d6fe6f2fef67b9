"""Speaker output: a paced player over a WAV file, a command's stdin or pyaudio.

The player hands audio to the sink only `lead` seconds ahead of real time (silence when there
is nothing to play), so a barge-in can stop playback within that lead: nothing is sitting in a
pipe or sound-card buffer that cannot be taken back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import struct
import time
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from wyoming_core.audio import AudioFormat, StreamConverter

from .settings import AudioSettings
from .vad import level_dbfs

_LOGGER = logging.getLogger(__name__)


class Sink(ABC):
    format: AudioFormat

    async def open(self) -> None:
        pass

    @abstractmethod
    async def write(self, pcm: bytes) -> None: ...

    async def close(self) -> None:
        pass


class FileSink(Sink):
    """Streams a WAV file; the header is kept up to date so the file is valid even mid-run."""

    def __init__(self, path: Path, fmt: AudioFormat) -> None:
        self.path = path
        self.format = fmt
        self._fh: BinaryIO | None = None
        self._size = 0
        self._last_patch = 0.0
        # One thread: file writes stay in order and off the event loop.
        self._io = ThreadPoolExecutor(1, thread_name_prefix="snd-file")

    def _header(self) -> bytes:
        fmt = self.format
        return (
            b"RIFF"
            + struct.pack("<I", 36 + self._size)
            + b"WAVEfmt "
            + struct.pack(
                "<IHHIIHH",
                16,
                1,
                fmt.channels,
                fmt.rate,
                fmt.bytes_per_second,
                fmt.frame_bytes,
                8 * fmt.width,
            )
            + b"data"
            + struct.pack("<I", self._size)
        )

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(self._header())

    def _write(self, pcm: bytes, patch: bool) -> None:
        assert self._fh is not None
        self._fh.write(pcm)
        self._size += len(pcm)
        if patch:
            self._patch()

    def _patch(self) -> None:
        assert self._fh is not None
        self._fh.seek(0)
        self._fh.write(self._header())
        self._fh.seek(0, 2)
        self._fh.flush()

    async def _run(self, func: Any, *args: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._io, func, *args)

    async def open(self) -> None:
        await self._run(self._open)

    async def write(self, pcm: bytes) -> None:
        now = time.monotonic()
        patch = now - self._last_patch > 0.5
        if patch:
            self._last_patch = now
        await self._run(self._write, pcm, patch)

    async def close(self) -> None:
        if self._fh is not None:
            await self._run(self._patch)
            await self._run(self._fh.close)
            self._fh = None
        self._io.shutdown(wait=False)


class CommandSink(Sink):
    """Raw PCM to a command's stdin, e.g. `aplay -r 22050 -c 1 -f S16_LE -t raw`."""

    def __init__(self, command: str, fmt: AudioFormat) -> None:
        self.command = command
        self.format = fmt
        self._proc: asyncio.subprocess.Process | None = None

    async def open(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *shlex.split(self.command), stdin=asyncio.subprocess.PIPE
        )

    async def write(self, pcm: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(pcm)
        await self._proc.stdin.drain()

    async def close(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._proc.wait(), 2.0)
            if self._proc.returncode is None:
                self._proc.terminate()


class PyAudioSink(Sink):
    def __init__(self, device: str | None, fmt: AudioFormat) -> None:
        self.device = device
        self.format = fmt
        self._pa: Any = None
        self._stream: Any = None

    async def open(self) -> None:
        from .audio_in import find_device
        from .soundcard import SPEAKER_HINT, open_stream, portaudio

        self._pa = portaudio()
        index = find_device(self._pa, self.device, "maxOutputChannels") if self.device else None
        self._stream = open_stream(
            "speaker",
            SPEAKER_HINT,
            lambda: self._pa.open(
                rate=self.format.rate,
                channels=self.format.channels,
                format=self._pa.get_format_from_width(self.format.width),
                output=True,
                output_device_index=index,
            ),
        )

    async def write(self, pcm: bytes) -> None:
        await asyncio.to_thread(self._stream.write, pcm)

    async def close(self) -> None:
        if self._stream is not None:
            await asyncio.to_thread(self._stream.close)
        if self._pa is not None:
            self._pa.terminate()


def open_sink(settings: AudioSettings) -> Sink:
    if settings.snd_file is not None:
        return FileSink(settings.snd_file, settings.snd_format)
    if settings.snd_command:
        return CommandSink(settings.snd_command, settings.snd_format)
    return PyAudioSink(settings.snd_device, settings.snd_format)


@dataclass(frozen=True)
class StopReport:
    """What a stop() flushed and when the last sound already handed out ends."""

    stopped_at: float
    audible_until: float
    flushed_seconds: float


class Player:
    """Plays queued audio at real-time pace; `stop()` flushes everything not yet handed out."""

    def __init__(
        self,
        sink: Sink,
        lead: float = 0.06,
        tick: float = 0.02,
        idle_tick: float = 0.1,
        max_queued_seconds: float = 300.0,
    ) -> None:
        self.sink = sink
        self.format = sink.format
        self.lead = lead
        self.tick = tick
        self.idle_tick = idle_tick
        # Audio from outside (Home Assistant) is only queued while `room_seconds` allows it.
        self.max_queued_seconds = max_queued_seconds
        self._wake = asyncio.Event()
        # Chunks as they came, and how much of the first one is already played: a tick takes
        # only what it plays, never copying the rest of a large chunk.
        self._queue: deque[bytes] = deque()
        self._head_offset = 0
        self._queued_bytes = 0
        self._cursor = 0.0  # monotonic time up to which audio has been handed to the sink
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._generation = 0
        # Monotonic time the last real (non-silence) sample ends at; for `played` and the log.
        self.sound_until = 0.0
        # The status page's volume (0..1; 16-bit audio only) and speaker level (dBFS of the
        # last audio handed out, measured only while `metering`: a page is open).
        self.volume = 1.0
        self.metering = False
        self.level = -120.0

    async def start(self) -> None:
        await self.sink.open()
        self._cursor = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="player")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sink.close()

    @property
    def generation(self) -> int:
        return self._generation

    def converter(self) -> StreamConverter:
        return StreamConverter(target=self.format)

    def enqueue(self, pcm: bytes, generation: int | None = None) -> float | None:
        """Queue audio in the speaker format; returns the monotonic time it will start to sound.

        Dropped (None) if a stop() came since `generation` was read: late audio of an
        interrupted reply must not play.
        """
        if generation is not None and generation != self._generation:
            return None
        starts_at = max(self._cursor, time.monotonic()) + self.queued_seconds
        if pcm:
            self._queue.append(pcm)
            self._queued_bytes += len(pcm)
            self._idle.clear()
            self._wake.set()
        return starts_at

    @property
    def busy(self) -> bool:
        """Something queued, or still coming out of the speaker."""
        return bool(self._queue) or self.sound_until > time.monotonic()

    @property
    def queued_seconds(self) -> float:
        return self._queued_bytes / self.format.bytes_per_second

    @property
    def room_seconds(self) -> float:
        """Seconds of audio that may still be queued within `max_queued_seconds`."""
        return max(0.0, self.max_queued_seconds - self.queued_seconds)

    def stop(self) -> StopReport:
        """Flush the queue at once (barge-in); returns when the sound already out will end."""
        flushed = self.queued_seconds
        self._queue.clear()
        self._head_offset = 0
        self._queued_bytes = 0
        self._generation += 1
        now = time.monotonic()
        # Only the `lead` already handed to the sink can still sound.
        audible_until = max(now, min(self._cursor, self.sound_until))
        self.sound_until = min(self.sound_until, self._cursor)
        self._idle.set()
        return StopReport(now, audible_until, flushed)

    async def wait_done(self, timeout: float | None = None) -> None:
        """Until everything queued has been played out of the speaker."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()
            delay = self.sound_until - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def _take(self, nbytes: int) -> tuple[bytes, int]:
        """The next `nbytes` of audio (silence after the queue's end); work in proportion to
        `nbytes`, whatever the size of the queued chunks."""
        parts: list[bytes | memoryview] = []
        real = 0
        while nbytes > 0 and self._queue:
            head = self._queue[0]
            end = min(len(head), self._head_offset + nbytes)
            parts.append(memoryview(head)[self._head_offset : end])
            taken = end - self._head_offset
            if end == len(head):
                self._queue.popleft()
                self._head_offset = 0
            else:
                self._head_offset = end
            nbytes -= taken
            real += taken
        self._queued_bytes -= real
        if nbytes > 0:
            parts.append(b"\0" * nbytes)
        return b"".join(parts), real

    async def _run(self) -> None:
        fmt = self.format
        while True:
            now = time.monotonic()
            playing = bool(self._queue)
            # Ahead of real time only while playing; idle, silence just keeps up with the clock.
            target = now + (self.lead if playing else 0.0)
            nbytes = int((target - self._cursor) * fmt.rate) * fmt.frame_bytes
            if nbytes > 0:
                start = self._cursor
                pcm, real = self._take(nbytes)
                self._cursor += len(pcm) / fmt.bytes_per_second
                if real:
                    self.sound_until = start + real / fmt.bytes_per_second
                    if self.volume < 1.0 and fmt.width == 2:
                        pcm = _scaled(pcm, self.volume)
                if self.metering:
                    self.level = level_dbfs(pcm) if real and fmt.width == 2 else -120.0
                if not self._queue:
                    self._idle.set()
                try:
                    await self.sink.write(pcm)
                except (OSError, ConnectionError) as err:
                    _LOGGER.error("Speaker write failed: %s", err)
            if self._queue or self.sound_until > now:
                await asyncio.sleep(self.tick)
            else:
                # Idle: wake up rarely (saves CPU on a Pi), or at once when audio is queued.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_tick)


def _scaled(pcm: bytes, volume: float) -> bytes:
    """16-bit samples times `volume` (0..1: never louder, so never clipped)."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16)
    return (samples * max(0.0, volume)).astype(np.int16).tobytes()
